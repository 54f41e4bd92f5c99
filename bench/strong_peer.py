"""The strong comparison peer: what an engineer who knows FastAPI writes for throughput.

An async endpoint on uvloop and httptools, pydantic validating the service's
bounds, and one persistent SQLite connection (WAL, synchronous=FULL) owned by one
writer thread. Requests that arrive while a batch is being written share the
next transaction, so they share its fsync: the same durability per batch as the
service's group commit. Organisations are read once, at start. No API keys: it
does less per request than the service. SQLite only.
Run: `python -m bench.strong_peer DATABASE_PATH HOST PORT`.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

INSERT = (
    "INSERT INTO conversation (organisation_id, sku, first_name, question, locale, created_at,"
    " retailer_locale, helpful, unhelpful, embeddable) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0)"
    " RETURNING id"
)
COUNT = (
    "INSERT INTO conversation_count (organisation_id, sku, locale, question_count, answers_count)"
    " VALUES (?, ?, ?, 1, 0) ON CONFLICT (organisation_id, sku, locale)"
    " DO UPDATE SET question_count = question_count + 1"
)
MAX_BATCH = 128


class CreateConversationBody(BaseModel):
    first_name: str = Field(min_length=1, max_length=100)
    question: str = Field(min_length=1, max_length=5000)
    sku: str = Field(min_length=1, max_length=100)
    locale: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
    )


class ConversationOut(BaseModel):
    id: int
    first_name: str
    question: str
    created_at: datetime.datetime
    helpful: int
    unhelpful: int
    embeddable: bool
    retailer_locale: str
    answers: list[object]
    answers_count: int


Row = tuple[int, str, str, str, str, str, str]


class GroupWriter:
    """One connection, one thread; each batch of queued rows is one transaction."""

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode = wal", "synchronous = FULL", "busy_timeout = 2000"):
            self._connection.execute(f"PRAGMA {pragma}")
        self._thread = ThreadPoolExecutor(1)
        self._queue: list[tuple[Row, asyncio.Future[int]]] = []
        self._writing = False

    def organisations(self) -> dict[str, tuple[int, str]]:
        rows = self._connection.execute("SELECT trkref, id, locale FROM organisation")
        return {trkref: (org_id, locale) for trkref, org_id, locale in rows}

    async def insert(self, row: Row) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    ids = await loop.run_in_executor(
                        self._thread, self._write, [r for r, _ in batch]
                    )
                except sqlite3.Error as error:
                    for _, future in batch:
                        future.set_exception(error)
                    continue
                for (_, future), row_id in zip(batch, ids, strict=True):
                    future.set_result(row_id)
        finally:
            self._writing = False

    def _write(self, rows: list[Row]) -> list[int]:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            ids = [connection.execute(INSERT, row).fetchone()[0] for row in rows]
            for org_id, sku, _, _, locale, _, _ in rows:
                connection.execute(COUNT, (org_id, sku, locale))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return ids


def create_app(writer: GroupWriter, organisations: dict[str, tuple[int, str]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v4/organisations/{trkref}/conversations")
    async def create_conversation(trkref: str, body: CreateConversationBody) -> ConversationOut:
        found = organisations.get(trkref)
        if found is None:
            raise HTTPException(status_code=404, detail="organisation not found")
        org_id, retailer_locale = found
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        stored_at = now.replace(tzinfo=None).isoformat(sep=" ")
        locale = body.locale or retailer_locale
        row = (org_id, body.sku, body.first_name, body.question, locale, stored_at, retailer_locale)
        row_id = await writer.insert(row)
        return ConversationOut(
            id=row_id,
            first_name=body.first_name,
            question=body.question,
            created_at=now,
            helpful=0,
            unhelpful=0,
            embeddable=False,
            retailer_locale=retailer_locale,
            answers=[],
            answers_count=0,
        )

    return app


def main() -> None:
    path, host, port = sys.argv[1:4]
    writer = GroupWriter(path)
    uvicorn.run(
        create_app(writer, writer.organisations()),
        host=host,
        port=int(port),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
