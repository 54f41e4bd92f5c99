"""The comparison peer: FastAPI + uvicorn doing the same insert, one transaction per request.

It is what a user would write with FastAPI and peewee: a sync endpoint (run in
FastAPI's thread pool), a pooled connection and a transaction per request. It
shares the service's models and database settings (WAL, synchronous=FULL,
`sqlite+pool`), not its write path. SQLite only. Run: `python -m bench.peer DATABASE_URL HOST PORT`.
"""

from __future__ import annotations

import datetime
import sys

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from server.storage.models import ConversationRow, OrganisationRow, database
from server.storage.store import Store


class CreateConversationBody(BaseModel):
    first_name: str = Field(min_length=1, max_length=100)
    question: str = Field(min_length=1, max_length=5000)
    sku: str = Field(min_length=1, max_length=100)
    locale: str | None = Field(default=None, max_length=35)


class ConversationOut(BaseModel):
    id: int
    first_name: str
    question: str
    created_at: datetime.datetime
    helpful: int
    unhelpful: int
    embeddable: bool
    retailer_locale: str


app = FastAPI()


@app.post("/v4/organisations/{trkref}/conversations")
def create_conversation(trkref: str, body: CreateConversationBody) -> ConversationOut:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
    # IMMEDIATE: a deferred transaction that reads, then writes, fails at once with
    # "database is locked" when another write commits in between.
    with database.connection_context(), database.atomic("IMMEDIATE"):
        organisation = OrganisationRow.get_or_none(OrganisationRow.trkref == trkref)
        if organisation is None:
            raise HTTPException(status_code=404, detail="organisation not found")
        row = ConversationRow.create(
            organisation=organisation,
            sku=body.sku,
            first_name=body.first_name,
            question=body.question,
            locale=body.locale or organisation.locale,
            created_at=now,
            retailer_locale=organisation.locale,
        )
    return ConversationOut(
        id=row.id,
        first_name=row.first_name,
        question=row.question,
        created_at=now.replace(tzinfo=datetime.UTC),
        helpful=0,
        unhelpful=0,
        embeddable=False,
        retailer_locale=row.retailer_locale,
    )


def main() -> None:
    database_url, host, port = sys.argv[1:4]
    store = Store.open(database_url)  # binds the models to its database
    try:
        uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False)
    finally:
        store.close()


if __name__ == "__main__":
    main()
