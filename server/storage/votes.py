"""The statements that count a batch of votes: a few per batch, however many votes it holds.

Each counter grows by one atomic `SET helpful = helpful + n` per target and
batch, never by a read-modify-write in Python, so votes from any number of
replicas add up exactly. A voter_id is recorded in `vote` under a unique index:
the insert that finds it taken counts nothing. The revision of each product whose
counters grow grows by the database's triggers (migration 0015), for what replicas keep
of their reads.
"""

from __future__ import annotations

import collections
import datetime
from typing import Any

import peewee

from server.service.domain import Vote
from server.service.errors import Unauthenticated
from server.storage.api_keys import active_keys
from server.storage.models import (
    AnswerRow,
    ConversationRow,
    OrganisationRow,
    VoteRow,
    naive_utc,
)

# Votes per batch: the ids of a batch's targets go in one IN (...) list.
MAX_BATCH = 256

_TABLES: dict[str, type[ConversationRow] | type[AnswerRow]] = {
    "conversation": ConversationRow,
    "answer": AnswerRow,
}
# A product's row in conversation_count: organisation id, sku, locale.
Product = tuple[int, str, str]


def record_votes(
    db: peewee.Database, batch: list[Vote], now: datetime.datetime
) -> list[bool | Exception]:
    """Count a batch of votes in one transaction; each vote's outcome: True when its
    target is one of its organisation's (counted, or a voter's repeat), False when not.

    Rows are locked in one order, as every writer locks them (migration 0015): the
    targets first (answers, then conversations, each by id), then the products' counts by
    key, as each product's targets are counted in turn; so concurrent batches on several
    replicas never deadlock.
    """
    with db.atomic():
        active = active_keys({v.voted_by for v in batch}, db)
        owners = _owners(db, batch)
        outcomes: list[bool | Exception] = []
        valid: list[Vote] = []
        for v in batch:
            owner = owners.get((v.target, v.target_id))
            if v.voted_by not in active:
                outcomes.append(Unauthenticated())
            elif owner is None or owner[0] != v.trkref:
                outcomes.append(False)
            else:
                outcomes.append(True)
                valid.append(v)
        first = _first_votes(db, [v for v in valid if v.voter_id is not None], now)
        increments: collections.Counter[tuple[str, int, str]] = collections.Counter()
        for v in valid:
            voter = (v.target, v.target_id, v.voter_id)
            if v.voter_id is None or voter in first:
                first.discard(voter)  # a voter's second vote in this batch counts nothing
                increments[v.target, v.target_id, v.counter] += 1
        for (target, target_id, counter), n in sorted(
            increments.items(), key=lambda item: (owners[item[0][:2]][1], item[0])
        ):
            table = _TABLES[target]
            column = getattr(table, counter)
            db.execute(  # type: ignore[no-untyped-call]
                table.update({column: column + n}).where(table.id == target_id)
            )
    return outcomes


def _owners(db: peewee.Database, batch: list[Vote]) -> dict[tuple[str, int], tuple[str, Product]]:
    """The trkref and the product of each target of the batch that exists and is published
    (an answer on a published conversation): shoppers vote on what they see. On PostgreSQL
    the targets are locked, answers first, each table's by id, before the voters are
    recorded (SQLite's one write connection serialises writers already)."""
    published = peewee.SQL("'published'")
    owner = (
        OrganisationRow.trkref,
        ConversationRow.organisation,
        ConversationRow.sku,
        ConversationRow.locale,
    )
    queries: dict[str, Any] = {
        "answer": AnswerRow.select(AnswerRow.id, *owner)
        .join(ConversationRow)
        .join(OrganisationRow)
        .where(
            AnswerRow.id.in_(_ids(batch, "answer"))
            & (AnswerRow.status == published)
            & (ConversationRow.status == published)
        )
        .order_by(AnswerRow.id),
        "conversation": ConversationRow.select(ConversationRow.id, *owner)
        .join(OrganisationRow)
        .where(
            ConversationRow.id.in_(_ids(batch, "conversation"))
            & (ConversationRow.status == published)
        )
        .order_by(ConversationRow.id),
    }
    owners: dict[tuple[str, int], tuple[str, Product]] = {}
    for target, query in queries.items():
        if isinstance(db, peewee.PostgresqlDatabase):
            query = query.for_update("FOR NO KEY UPDATE", of=_TABLES[target])
        if _ids(batch, target):
            rows = db.execute(query)  # type: ignore[no-untyped-call]
            owners.update(
                ((target, target_id), (trkref, (organisation_id, sku, locale)))
                for target_id, trkref, organisation_id, sku, locale in rows
            )
    return owners


def _ids(batch: list[Vote], target: str) -> list[int]:
    return sorted({v.target_id for v in batch if v.target == target})


def _first_votes(
    db: peewee.Database, votes: list[Vote], now: datetime.datetime
) -> set[tuple[str, int, str]]:
    """Record the voters of these votes; the (target, id, voter) not recorded before."""
    voters = sorted({(v.target, v.target_id, v.voter_id) for v in votes if v.voter_id})
    if not voters:
        return set()
    created_at = naive_utc(now)
    rows = [
        {"target": t, "target_id": i, "voter_id": voter, "created_at": created_at}
        for t, i, voter in voters
    ]
    inserted = db.execute(  # type: ignore[no-untyped-call]
        VoteRow.insert_many(rows)
        .on_conflict(
            conflict_target=(VoteRow.target, VoteRow.target_id, VoteRow.voter_id),
            action="NOTHING",
        )
        .returning(VoteRow.target, VoteRow.target_id, VoteRow.voter_id)
    )
    return {(t, i, voter) for t, i, voter in inserted}
