"""Storage: the peewee models and the queries the service needs.

The models are bound late, through `database`, so that one set of models serves
SQLite (the embedded default) and PostgreSQL (production).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.migrations import Runner
from playhouse.pool import MaxConnectionsExceeded

from server.domain import Answer, Conversation, NewConversation, Organisation
from server.errors import OrganisationExists, StorageUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class OrganisationRow(BaseModel):
    id = peewee.AutoField()
    trkref = peewee.CharField(max_length=32, unique=True)
    name = peewee.CharField(max_length=200)
    locale = peewee.CharField(max_length=35)

    class Meta:
        table_name = "organisation"


class ConversationRow(BaseModel):
    id = peewee.AutoField()
    organisation = peewee.ForeignKeyField(OrganisationRow, backref="conversations")
    sku = peewee.CharField(max_length=100)
    first_name = peewee.CharField(max_length=100)
    question = peewee.TextField()
    locale = peewee.CharField(max_length=35)
    created_at = peewee.DateTimeField()
    helpful = peewee.IntegerField(default=0)
    unhelpful = peewee.IntegerField(default=0)
    embeddable = peewee.BooleanField(default=False)
    retailer_locale = peewee.CharField(max_length=35)

    class Meta:
        table_name = "conversation"
        indexes = ((("organisation", "sku"), False),)


class AnswerRow(BaseModel):
    id = peewee.AutoField()
    conversation = peewee.ForeignKeyField(ConversationRow, backref="answers")
    response = peewee.TextField()
    created_at = peewee.DateTimeField()
    first_name = peewee.CharField(max_length=100)
    town = peewee.CharField(max_length=100, default="")
    job_title = peewee.CharField(max_length=100, null=True)
    reviewer_segment = peewee.CharField(max_length=100, default="")
    helpful = peewee.IntegerField(default=0)
    unhelpful = peewee.IntegerField(default=0)
    review_url = peewee.CharField(max_length=2048, default="")
    review_locale = peewee.CharField(max_length=35, default="")
    reviewer_facebook_url = peewee.CharField(max_length=2048, null=True)
    response_type = peewee.CharField(max_length=20, default="owner")
    retailer_name = peewee.CharField(max_length=200, null=True)
    retailer_image_url = peewee.CharField(max_length=2048, null=True)

    class Meta:
        table_name = "answer"


# Failures of the database itself (down, locked, connection lost, every pooled
# connection busy past the timeout), as opposed to a bug in a query: the caller
# may retry them.
_UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)

# Seconds a database call may take before it fails as unavailable.
DEFAULT_TIMEOUT = 2.0

# Told of each error that made a unit of work fail as unavailable (metrics count them).
unavailable_listeners: list[Callable[[BaseException], None]] = []

# Pooled connections: opening a connection per call costs about a millisecond.
_POOLED_SCHEMES = {
    "sqlite": "sqlite+pool",
    "postgres": "postgresql+pool",
    "postgresql": "postgresql+pool",
}


def open_database(
    url: str, *, sqlite_synchronous: str = "FULL", timeout: float = DEFAULT_TIMEOUT
) -> peewee.Database:
    """Create the Database a URL names and bind the models to it.

    `timeout` bounds, in seconds, each wait on the database: for a pooled
    connection, for a lock, for a statement, for a connection to open.
    """
    parsed = urlparse(url)
    scheme = _POOLED_SCHEMES.get(parsed.scheme, parsed.scheme)
    options: dict[str, object] = {
        "max_connections": 64,
        "stale_timeout": 600,
        "timeout": max(1, round(timeout)),
    }
    if scheme.startswith("sqlite"):
        path = url.split("://", 1)[1][1:]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        options["pragmas"] = {
            # First: the pragmas after it may wait for a lock too.
            "busy_timeout": round(timeout * 1000),
            "journal_mode": "wal",
            # FULL: a committed create survives power loss, not only a crash.
            "synchronous": sqlite_synchronous,
            "foreign_keys": 1,
        }
        options["check_same_thread"] = False
        # Take the write lock at BEGIN: a deferred transaction that reads, then
        # writes after another connection committed, fails at once with
        # "database is locked" instead of waiting for busy_timeout.
        options["lock_type"] = "IMMEDIATE"
    else:
        options.update(_postgres_timeouts(timeout))
    db: peewee.Database = db_url.connect(scheme + url[len(parsed.scheme) :], **options)
    database.initialize(db)
    return db


def _postgres_timeouts(timeout: float) -> dict[str, object]:
    """libpq options that make every wait on PostgreSQL end within about `timeout`."""
    milliseconds = round(timeout * 1000)
    return {
        # Whole seconds; libpq treats 1 as 2.
        "connect_timeout": max(2, round(timeout)),
        # A query waiting on a lock or running too long is cancelled.
        "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
        # A server that vanished without closing the connection (network
        # partition, power loss) is noticed instead of waited on forever.
        "tcp_user_timeout": milliseconds,
        "keepalives": 1,
        "keepalives_idle": max(1, round(timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 2,
    }


def close_database() -> None:
    """Close every pooled connection of the bound database."""
    database.obj.close_all()


@contextmanager
def session() -> Iterator[None]:
    """One unit of work: a pooled connection and a transaction around it."""
    try:
        with database.connection_context(), database.atomic():
            yield
    except _UNAVAILABLE_ERRORS as error:
        for listener in unavailable_listeners:
            listener(error)
        raise StorageUnavailable(f"database unavailable: {error}") from error


def ping() -> None:
    """One bounded round trip to the database; raises StorageUnavailable when it fails."""
    with session():
        database.execute_sql("SELECT 1")


def migrate() -> list[str]:
    """Apply pending migrations; returns the names applied."""
    with database.connection_context():
        return list(Runner(database.obj, str(MIGRATIONS)).up())


def find_organisation(trkref: str) -> Organisation | None:
    row = OrganisationRow.get_or_none(OrganisationRow.trkref == trkref)
    return None if row is None else _organisation(row)


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


def insert_conversation(
    new: NewConversation, organisation: Organisation, created_at: datetime.datetime
) -> Conversation:
    """Store a new conversation; `created_at` is aware UTC and is stored naive."""
    row = ConversationRow.create(
        organisation=OrganisationRow.get(OrganisationRow.trkref == organisation.trkref),
        sku=new.sku,
        first_name=new.first_name,
        question=new.question,
        locale=new.locale or organisation.locale,
        created_at=created_at.astimezone(datetime.UTC).replace(tzinfo=None),
        retailer_locale=organisation.locale,
    )
    return _conversation(row, organisation.trkref, answers=())


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
