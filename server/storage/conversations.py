"""Queries of conversations and their answers, and the statement that stores a batch of creates."""

from __future__ import annotations

import collections
import datetime
import functools
from collections.abc import Sequence
from typing import Any

import peewee

from server.service.domain import (
    PUBLISHED,
    Answer,
    Conversation,
    PageKey,
    PendingCreate,
    StoredCreate,
)
from server.service.errors import ConversationIdsExhausted, Unauthenticated
from server.storage.api_keys import active_keys
from server.storage.models import (
    EXCLUDED,
    AnswerRow,
    ApiKeyRow,
    ConversationCountRow,
    ConversationRow,
    OrganisationRow,
    database,
    naive_utc,
    utc,
)
from server.storage.prepared import Prepared, parameter, prepare, stored_time

# The largest conversation id: the contract's ids are uint32, which REST clients read as JSON
# numbers. PostgreSQL's integer column stops its sequence lower, at 2**31 - 1.
MAX_CONVERSATION_ID = 2**32 - 1

# Rows per statement: 13 parameters a row stays far below SQLite's and
# PostgreSQL's limits on parameters per statement.
MAX_BATCH = 128

# The columns a create writes, in the order of each row's parameters.
_INSERTED = (
    ConversationRow.organisation,
    ConversationRow.sku,
    ConversationRow.first_name,
    ConversationRow.question,
    ConversationRow.locale,
    ConversationRow.created_at,
    ConversationRow.retailer_locale,
    ConversationRow.helpful,
    ConversationRow.unhelpful,
    ConversationRow.embeddable,
    ConversationRow.created_by,
    ConversationRow.request_id,
    ConversationRow.request_digest,
    ConversationRow.status,
    ConversationRow.held_for,
)
# The parameters of one row, in _row_params' order; _insert_sql checks peewee agrees.
_ROW_PARAMETERS = ("trkref", *(field.name for field in _INSERTED[1:]), "key_id")


def _row_params(p: PendingCreate) -> tuple[object, ...]:
    new, organisation = p.new, p.organisation
    return (
        *(organisation.trkref, new.sku, new.first_name, new.question),
        *(new.locale or organisation.locale, naive_utc(p.created_at), organisation.locale),
        *(0, 0, False, p.created_by, new.request_id, p.request_digest),
        *(p.status, ",".join(p.held_for), p.created_by),
    )


def insert_conversations(
    db: peewee.Database, batch: list[PendingCreate]
) -> list[StoredCreate | Exception]:
    """One INSERT ... SELECT ... RETURNING: a row is stored only while its key is active;
    the product counts grow by its published rows in the same transaction.

    The key check and the insert are one statement and see one state: a key revoked
    before it commits stores nothing. A create whose (created_by, request_id) is taken
    stores nothing and gets what is stored under it: the unique index decides, so
    concurrent retries cannot both insert.
    """
    params = [value for p in batch for value in _row_params(p)]
    with db.atomic():
        cursor = db.execute_sql(_insert_sql(db, len(batch)), params)  # type: ignore[no-untyped-call]
        # Both databases draw the ids in SELECT order, but RETURNING's order is unspecified.
        inserted = sorted(cursor.fetchall())
        if inserted and inserted[-1][0] > MAX_CONVERSATION_ID:
            raise ConversationIdsExhausted()  # the rows are rolled back, not stored
        _count_conversations(db, [row[3:] for row in inserted])
    ids = iter(row[0] for row in inserted)
    # Keys that stored a row are active; a create without request_id is stored
    # exactly when its key is active, one with it unless the request_id was taken.
    writers = {row[1] for row in inserted}
    claimed = {(row[1], row[2]) for row in inserted if row[2] is not None}
    outcomes: list[StoredCreate | Exception | None] = []
    for p in batch:
        key = (p.created_by, p.new.request_id)
        stored = key in claimed if p.new.request_id else p.created_by in writers
        claimed.discard(key)  # a later twin in this batch was the one skipped
        outcomes.append(
            StoredCreate(_new_conversation(next(ids), p), p.request_digest) if stored else None
        )
    if None in outcomes:
        with database.connection_context():  # a pooled connection: the rows are committed
            _explain_skipped(batch, outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _explain_skipped(
    batch: list[PendingCreate], outcomes: list[StoredCreate | Exception | None]
) -> None:
    """The outcome of each create the statement skipped: a revoked key, or a retry."""
    skipped = [i for i, outcome in enumerate(outcomes) if outcome is None]
    active = active_keys({batch[i].created_by for i in skipped})
    for i in skipped:
        p = batch[i]
        if p.created_by not in active:
            outcomes[i] = Unauthenticated()
        else:
            assert p.new.request_id is not None, "an active key's create is skipped as a retry"
            found = find_requested(p.created_by, p.new.request_id)
            assert found is not None, "the unique index has just reported it"
            outcomes[i] = found


@functools.lru_cache(maxsize=4 * MAX_BATCH)
def _insert_sql(db: peewee.Database, rows: int) -> str:
    """The INSERT of `rows` creates, built by peewee once per database and size.

    Building the query costs far more than running it; the text depends only on these two.
    """
    values = {name: peewee.Value(name) for name in _ROW_PARAMETERS}
    active_key = ApiKeyRow.select(ApiKeyRow.id).where(
        (ApiKeyRow.key_id == values["key_id"]) & ApiKeyRow.revoked_at.is_null()
    )
    # The organisation's id by a subquery: one that is gone fails its row (NOT NULL).
    organisation_id = OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == values["trkref"]
    )
    row = peewee.Select(
        columns=[organisation_id, *(values[field.name] for field in _INSERTED[1:])]
    ).where(peewee.fn.EXISTS(active_key))
    source: peewee.SelectBase = row
    for _ in range(rows - 1):
        source += row  # UNION ALL
    query = (
        ConversationRow.insert_from(source, _INSERTED)
        .on_conflict(
            conflict_target=(ConversationRow.created_by, ConversationRow.request_id),
            action="NOTHING",
        )
        .returning(
            ConversationRow.id,
            ConversationRow.created_by,
            ConversationRow.request_id,
            ConversationRow.organisation,
            ConversationRow.sku,
            ConversationRow.locale,
            ConversationRow.status,
        )
    )
    sql, params = query.sql()
    assert params == list(_ROW_PARAMETERS) * rows, "parameters out of _row_params' order"
    return str(sql)


def _count_conversations(db: peewee.Database, inserted: list[tuple[int, str, str, str]]) -> None:
    """Add the published conversations just inserted to their products' counts, in one
    statement (their products' revisions moved as they were inserted, migration 0015).

    The rows are upserted in key order, as every writer locks them, so that concurrent
    writers never deadlock.
    """
    if not inserted:
        return
    counter = collections.Counter({(org, sku, locale): 0 for org, sku, locale, _ in inserted})
    counter.update(
        (org, sku, locale) for org, sku, locale, status in inserted if status == PUBLISHED
    )
    added = sorted(counter.items())
    values = {
        f"{name}{n}": value
        for n, ((org, sku, locale), count) in enumerate(added)
        for name, value in (("org", org), ("sku", sku), ("locale", locale), ("count", count))
    }
    _count_statement(db, len(added)).execute(db, values)


@functools.lru_cache(maxsize=MAX_BATCH)
def _count_statement(db: peewee.Database, products: int) -> Prepared:
    """The upsert that adds to `products` products' counts (parameters org0, sku0, ...)."""
    rows = [
        {
            "organisation": parameter(f"org{n}"),
            "sku": parameter(f"sku{n}"),
            "locale": parameter(f"locale{n}"),
            "question_count": parameter(f"count{n}"),
        }
        for n in range(products)
    ]
    count = ConversationCountRow.question_count
    key = (ConversationCountRow.organisation, ConversationCountRow.sku, ConversationCountRow.locale)
    return prepare(
        ConversationCountRow.insert_many(rows).on_conflict(
            conflict_target=key, update={count: count + EXCLUDED.question_count}
        )
    )


def _new_conversation(conversation_id: int, pending: PendingCreate) -> Conversation:
    new, organisation = pending.new, pending.organisation
    return Conversation(
        id=conversation_id,
        trkref=organisation.trkref,
        sku=new.sku,
        first_name=new.first_name,
        question=new.question,
        locale=new.locale or organisation.locale,
        created_at=pending.created_at.astimezone(datetime.UTC),
        helpful=0,
        unhelpful=0,
        embeddable=False,
        retailer_locale=organisation.locale,
        status=pending.status,
        held_for=pending.held_for,
    )


def find_requested(created_by: str, request_id: str) -> StoredCreate | None:
    """The conversation this key created with this request_id, and its request digest."""
    row = (
        ConversationRow.select(ConversationRow, OrganisationRow)
        .join(OrganisationRow)
        .where(
            (ConversationRow.created_by == created_by) & (ConversationRow.request_id == request_id)
        )
        .get_or_none()
    )
    if row is None:
        return None
    conversation = conversation_from_row(row, row.organisation.trkref, answers=())
    return StoredCreate(
        conversation._replace(status=row.status, held_for=held_reasons(row.held_for)),
        row.request_digest,
    )


def held_reasons(column: str) -> tuple[str, ...]:
    """The reasons an item is held, as its held_for column joins them."""
    return tuple(column.split(",")) if column else ()


# A conversation's columns, in the order of Conversation's fields (its trkref apart).
CONVERSATION_COLUMNS = (
    ConversationRow.id,
    ConversationRow.sku,
    ConversationRow.first_name,
    ConversationRow.question,
    ConversationRow.locale,
    ConversationRow.created_at,
    ConversationRow.helpful,
    ConversationRow.unhelpful,
    ConversationRow.embeddable,
    ConversationRow.retailer_locale,
    ConversationRow.answers_count,
)


def conversation_from_tuple(
    row: Sequence[Any],
    trkref: str,
    answers: tuple[Answer, ...],
    answers_after: PageKey | None = None,
    status: str = PUBLISHED,
    held_for: tuple[str, ...] = (),
) -> Conversation:
    """A conversation from its CONVERSATION_COLUMNS, with a page of its answers; its
    status and why it is held as the read knows them."""
    id_, sku, first_name, question, locale, created_at, helpful, unhelpful, *rest = row
    embeddable, retailer_locale, answers_count = rest
    return Conversation(
        id_,
        trkref,
        sku,
        first_name,
        question,
        locale,
        stored_time(created_at),
        helpful,
        unhelpful,
        bool(embeddable),
        retailer_locale,
        answers,
        answers_count,
        answers_after,
        "",
        status,
        held_for,
    )


def count_conversations() -> int:
    return int(ConversationRow.select().count())


def conversation_from_row(
    row: ConversationRow, trkref: str, answers: tuple[Answer, ...]
) -> Conversation:
    return Conversation(
        id=row.id,
        trkref=trkref,
        sku=row.sku,
        first_name=row.first_name,
        question=row.question,
        locale=row.locale,
        created_at=utc(row.created_at),
        helpful=row.helpful,
        unhelpful=row.unhelpful,
        embeddable=row.embeddable,
        retailer_locale=row.retailer_locale,
        answers=answers,
        answers_count=row.answers_count,
    )


def answer_from_row(row: AnswerRow) -> Answer:
    return Answer(
        id=row.id,
        response=row.response,
        created_at=utc(row.created_at),
        first_name=row.first_name,
        town=row.town,
        job_title=row.job_title,
        reviewer_segment=row.reviewer_segment,
        helpful=row.helpful,
        unhelpful=row.unhelpful,
        review_url=row.review_url,
        review_locale=row.review_locale,
        reviewer_facebook_url=row.reviewer_facebook_url,
        response_type=row.response_type,
        retailer_name=row.retailer_name,
        retailer_image_url=row.retailer_image_url,
    )
