"""Storage: the queries the service needs, over server.models, and the group commit of creates.

The connections they run on, and the units of work around them, are server.connections.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import peewee

from server import connections
from server.domain import Answer, ApiKey, Conversation, NewConversation, Organisation
from server.errors import (
    OrganisationExists,
    OrganisationNotFound,
    StorageUnavailable,
    Unauthenticated,
)
from server.group_commit import Closed, GroupCommit
from server.models import (
    AnswerRow,
    ApiKeyOrganisationRow,
    ApiKeyRow,
    ConversationRow,
    OrganisationRow,
)
from server.models import database as database  # bound by open_database, used by callers


def find_organisation(trkref: str) -> Organisation | None:
    row = OrganisationRow.get_or_none(OrganisationRow.trkref == trkref)
    return None if row is None else _organisation(row)


# Organisations already found, by trkref. No code changes or removes an
# organisation, so one found stays right; a trkref not found is looked up every
# time, so an organisation added while serving (by the CLI) is found at once.
_known_organisations: dict[str, Organisation] = {}
# Binding another database (initialize) forgets them; peewee is unannotated.
database.attach_callback(lambda db: _known_organisations.clear())  # type: ignore[no-untyped-call]


async def known_organisation(trkref: str) -> Organisation | None:
    """find_organisation, remembering what it found; the database is read in a thread."""
    organisation = _known_organisations.get(trkref)
    if organisation is None:
        organisation = await asyncio.to_thread(_look_up_organisation, trkref)
    return organisation


def _look_up_organisation(trkref: str) -> Organisation | None:
    with connections.reading():
        organisation = find_organisation(trkref)
    if organisation is not None:
        _known_organisations[trkref] = organisation
    return organisation


def list_organisations() -> list[Organisation]:
    return [_organisation(row) for row in OrganisationRow.select().order_by(OrganisationRow.trkref)]


def insert_organisation(organisation: Organisation) -> None:
    try:
        with database.atomic():
            OrganisationRow.create(
                trkref=organisation.trkref, name=organisation.name, locale=organisation.locale
            )
    except peewee.IntegrityError as error:
        raise OrganisationExists(organisation.trkref) from error


def count_organisations() -> int:
    return int(OrganisationRow.select().count())


@dataclass(frozen=True)
class PendingCreate:
    """One create waiting to be written: what was asked, for whom, by whom, and when."""

    new: NewConversation
    organisation: Organisation
    created_at: datetime.datetime
    created_by: str
    request_digest: str | None = None


@dataclass(frozen=True)
class StoredCreate:
    """The conversation a create stored, or the one its request_id had stored before.

    `request_digest` is that of the request that stored it: the service tells a
    retry from a reused request_id by it.
    """

    conversation: Conversation
    request_digest: str | None


# Rows per transaction: 13 parameters a row stays far below SQLite's and
# PostgreSQL's limits on parameters per statement.
MAX_BATCH = 128
# A batch's statements each wait at most the database timeout and then fail;
# a caller waiting this many times that long on its create means something is stuck.
WRITE_TIMEOUT_FACTOR = 5

_writer_lock = threading.Lock()
_conversation_writer: GroupCommit[PendingCreate, StoredCreate] | None = None


async def insert_conversation(pending: PendingCreate) -> StoredCreate:
    """Store a new conversation; returns once the statement holding it has committed.

    Concurrent calls share one statement (group commit), written by the
    writer's own thread. A create whose (created_by, request_id) is taken
    stores nothing and returns what is stored under it: the unique index
    decides, so concurrent retries cannot both insert.
    """
    try:
        return await _writer().submit(pending, _write_timeout())
    except (TimeoutError, Closed) as error:
        raise StorageUnavailable(f"database unavailable: {error or 'write timed out'}") from error


def _write_timeout() -> float:
    return WRITE_TIMEOUT_FACTOR * connections.timeout()


def _close_writer() -> None:
    """Write the creates still queued; the next create starts another writer."""
    global _conversation_writer
    with _writer_lock:
        writer, _conversation_writer = _conversation_writer, None
    if writer is not None:
        writer.close(_write_timeout())


connections.before_close.append(_close_writer)


def _writer() -> GroupCommit[PendingCreate, StoredCreate]:
    global _conversation_writer
    with _writer_lock:
        if _conversation_writer is None:
            _conversation_writer = GroupCommit(
                _write_conversations, max_batch=MAX_BATCH, fail_queued_on=StorageUnavailable
            )
        return _conversation_writer


def _write_conversations(batch: list[PendingCreate]) -> Sequence[StoredCreate | Exception]:
    """Write a batch in one statement; every create gets its outcome or its error."""
    outcomes = _try_write_conversations(batch)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            connections.drop_frames(outcome)
    return outcomes


def _try_write_conversations(batch: list[PendingCreate]) -> Sequence[StoredCreate | Exception]:
    try:
        with connections.write_connection() as db:
            return _insert_conversations(db, batch)
    except StorageUnavailable as error:
        return [error] * len(batch)
    except peewee.DatabaseError as error:
        if len(batch) == 1:
            return [error]
        # One bad row fails the whole statement: write each alone, so only it fails.
        return [outcome for pending in batch for outcome in _try_write_conversations([pending])]


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
)
# The parameters of one row, in _row_params' order; _insert_sql checks peewee agrees.
_ROW_PARAMETERS = ("trkref", *(field.name for field in _INSERTED[1:]), "key_id")


def _row_params(p: PendingCreate) -> tuple[object, ...]:
    new, organisation = p.new, p.organisation
    return (
        *(organisation.trkref, new.sku, new.first_name, new.question),
        *(new.locale or organisation.locale, _naive_utc(p.created_at), organisation.locale),
        *(0, 0, False, p.created_by, new.request_id, p.request_digest, p.created_by),
    )


def _insert_conversations(
    db: peewee.Database, batch: list[PendingCreate]
) -> list[StoredCreate | Exception]:
    """One INSERT ... SELECT ... RETURNING: a row is stored only while its key is active.

    A single statement is its own transaction, on both databases: the key check
    and the insert see one state, and a key revoked before it commits stores nothing.
    """
    params = [value for p in batch for value in _row_params(p)]
    cursor = db.execute_sql(_insert_sql(db, len(batch)), params)  # type: ignore[no-untyped-call]
    # Both databases draw the ids in SELECT order, but RETURNING's order is unspecified.
    inserted = sorted(cursor.fetchall())
    ids = iter(conversation_id for conversation_id, _, _ in inserted)
    # Keys that stored a row are active; a create without request_id is stored
    # exactly when its key is active, one with it unless the request_id was taken.
    writers = {by for _, by, _ in inserted}
    claimed = {(by, request_id) for _, by, request_id in inserted if request_id is not None}
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
    active = _active_keys({batch[i].created_by for i in skipped})
    for i in skipped:
        p = batch[i]
        if p.created_by not in active:
            outcomes[i] = Unauthenticated()
        else:
            assert p.new.request_id is not None, "an active key's create is skipped as a retry"
            found = find_requested(p.created_by, p.new.request_id)
            assert found is not None, "the unique index has just reported it"
            outcomes[i] = StoredCreate(*found)


def _active_keys(key_ids: set[str]) -> set[str]:
    """Which of these keys are not revoked."""
    active = ApiKeyRow.select(ApiKeyRow.key_id).where(
        ApiKeyRow.key_id.in_(sorted(key_ids)) & ApiKeyRow.revoked_at.is_null()
    )
    return {row.key_id for row in active}


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
        .returning(ConversationRow.id, ConversationRow.created_by, ConversationRow.request_id)
    )
    sql, params = query.sql()
    assert params == list(_ROW_PARAMETERS) * rows, "parameters out of _row_params' order"
    return str(sql)


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
    )


def find_requested(created_by: str, request_id: str) -> tuple[Conversation, str | None] | None:
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
    return _conversation(row, row.organisation.trkref, answers=()), row.request_digest


def get_conversation(conversation_id: int) -> Conversation | None:
    row = (
        ConversationRow.select(ConversationRow, OrganisationRow)
        .join(OrganisationRow)
        .where(ConversationRow.id == conversation_id)
        .get_or_none()
    )
    if row is None:
        return None
    answers = tuple(
        _answer(a)
        for a in AnswerRow.select()
        .where(AnswerRow.conversation == row.id)
        .order_by(AnswerRow.created_at, AnswerRow.id)
    )
    return _conversation(row, row.organisation.trkref, answers)


def count_conversations() -> int:
    return int(ConversationRow.select().count())


def insert_api_key(key: ApiKey) -> None:
    """Store a key and its organisations; every trkref must name an organisation."""
    organisations = list(
        OrganisationRow.select().where(OrganisationRow.trkref.in_(sorted(key.organisations)))
    )
    missing = key.organisations - {row.trkref for row in organisations}
    if missing:
        raise OrganisationNotFound(sorted(missing)[0])
    row = ApiKeyRow.create(
        key_id=key.key_id,
        secret_hash=key.secret_hash,
        created_at=_naive_utc(key.created_at),
        revoked_at=None,
    )
    ApiKeyOrganisationRow.insert_many(
        [{"api_key": row.id, "organisation": organisation.id} for organisation in organisations]
    ).execute()


def _api_keys_query() -> peewee.ModelSelect[ApiKeyRow]:
    return (
        ApiKeyRow.select(ApiKeyRow, OrganisationRow.trkref)
        .join(ApiKeyOrganisationRow, peewee.JOIN.LEFT_OUTER)
        .join(OrganisationRow, peewee.JOIN.LEFT_OUTER)
        .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    )


def _api_keys(query: peewee.ModelSelect[ApiKeyRow] | peewee.ModelRaw) -> list[ApiKey]:
    keys: dict[str, dict[str, Any]] = {}
    trkrefs: dict[str, set[str]] = {}
    # peewee's types say model instances; .dicts() yields plain rows.
    rows = cast(Iterable[dict[str, Any]], query.dicts())
    for row in rows:
        keys.setdefault(row["key_id"], row)
        trkrefs.setdefault(row["key_id"], set())
        if row["trkref"] is not None:
            trkrefs[row["key_id"]].add(row["trkref"])
    return [
        ApiKey(
            key_id=key_id,
            organisations=frozenset(trkrefs[key_id]),
            created_at=_utc(row["created_at"]),
            revoked_at=None if row["revoked_at"] is None else _utc(row["revoked_at"]),
            secret_hash=row["secret_hash"],
        )
        for key_id, row in keys.items()
    ]


def find_api_key(key_id: str) -> ApiKey | None:
    """The key with its organisations, in one query: the one every authenticated call runs."""
    found = _api_keys(ApiKeyRow.raw(_find_api_key_sql(database.obj), key_id))
    return found[0] if found else None


@functools.lru_cache(maxsize=8)
def _find_api_key_sql(db: peewee.Database) -> str:
    """find_api_key's SQL, built by peewee once per database: building cost more than running."""
    sql, _ = _api_keys_query().where(ApiKeyRow.key_id == "").sql()
    return str(sql)


def list_api_keys() -> list[ApiKey]:
    return _api_keys(_api_keys_query())


def revoke_api_key(key_id: str, at: datetime.datetime) -> bool:
    """Mark a key revoked; False when no such key is active."""
    updated = (
        ApiKeyRow.update(revoked_at=_naive_utc(at))
        .where((ApiKeyRow.key_id == key_id) & ApiKeyRow.revoked_at.is_null())
        .execute()
    )
    return bool(updated)


def _naive_utc(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def _organisation(row: OrganisationRow) -> Organisation:
    return Organisation(trkref=row.trkref, name=row.name, locale=row.locale)


def _utc(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=datetime.UTC)


def _conversation(row: ConversationRow, trkref: str, answers: tuple[Answer, ...]) -> Conversation:
    return Conversation(
        id=row.id,
        trkref=trkref,
        sku=row.sku,
        first_name=row.first_name,
        question=row.question,
        locale=row.locale,
        created_at=_utc(row.created_at),
        helpful=row.helpful,
        unhelpful=row.unhelpful,
        embeddable=row.embeddable,
        retailer_locale=row.retailer_locale,
        answers=answers,
    )


def _answer(row: AnswerRow) -> Answer:
    return Answer(
        id=row.id,
        response=row.response,
        created_at=_utc(row.created_at),
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
