"""The Store: one open database and all that belongs to it, handed to the use cases.

It owns the connection pool, the connection creates are written on, the group
commit that writes them, the organisations already found, the timeout every
wait on the database is bounded by, and the state of a database fault (logged
once per fault, health NOT_SERVING while it lasts). Each method is one unit of
work; every database error leaves it as a domain error (server.storage.errors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import peewee
from opentelemetry import trace

from server.service.domain import (
    SHOPPER,
    AnswerPage,
    AnswerQuery,
    Conversation,
    ConversationPage,
    PageQuery,
    PendingAnswer,
    PendingCreate,
    Stamp,
    StoredAnswer,
    StoredCreate,
    Vote,
)
from server.storage import (
    answers,
    conversations,
    detail,
    listing,
    stamps,
)
from server.storage.api_keys_store import ApiKeys
from server.storage.batches import Batches
from server.storage.database import (
    DEFAULT_TIMEOUT,
    DatabaseFile,
    SharedConnection,
    connect,
    sqlite_path,
)
from server.storage.errors import (
    DATABASE_ERRORS,
    FaultPeriods,
    OnUnavailable,
    as_domain_error,
    translated,
    unavailable,
)
from server.storage.group_commit import Closed, GroupCommit
from server.storage.migrate import apply_migrations
from server.storage.models import ServiceSecretRow, database
from server.storage.moderation_store import Moderation
from server.storage.organisations_store import Organisations
from server.storage.read_cache import DEFAULT_MIB, ReadCache

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
log = logging.getLogger(__name__)

# More answers than a conversation can have: ids are 32-bit, and SQL's LIMIT takes one more.
ALL_ANSWERS = 2**31 - 2

# The health probe's write while a fault lasts: any row, rewritten with its own value.
_PROBE_WRITE = "UPDATE service_secret SET value = value WHERE name = %s"

# A batch's statements each wait at most the database timeout and then fail;
# a caller waiting this many times that long on its create means something is stuck.
WRITE_TIMEOUT_FACTOR = 5

Result = TypeVar("Result")
Arg = TypeVar("Arg")


def _ignore(error: BaseException) -> None:
    pass


def _system(db: peewee.Database) -> str:
    """The database's name in OpenTelemetry's conventions (db.system.name)."""
    return "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"


class Store:
    """The database the service works on; open one per process with Store.open().

    The peewee models are bound to its database while it is open: one Store at a
    time serves a process.
    """

    def __init__(
        self,
        db: peewee.Database,
        write_connection: SharedConnection,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_unavailable: OnUnavailable = _ignore,
        tracer: trace.Tracer | None = None,
        file: DatabaseFile | None = None,
        read_cache: ReadCache | None = None,
    ) -> None:
        """`tracer`: when given, each wait of a call on the database is a span of its own.
        `read_cache`: where List pages and Detail's conversations are kept (by default,
        a ReadCache of DEFAULT_MIB)."""
        self.db = db
        self.read_cache = ReadCache() if read_cache is None else read_cache
        self._embedded = isinstance(db, peewee.SqliteDatabase)
        self.timeout = timeout
        self._write_connection = write_connection
        self._count_unavailable = on_unavailable
        self._file = file
        self.faults = FaultPeriods()
        self.batches = Batches(write_connection, self.faults, self._on_unavailable)
        self._page_token_secret: bytes | None = None
        self._tracer = tracer
        self._span_attributes = {"db.system.name": _system(db)}
        self.moderation = Moderation(self)
        self.api_keys = ApiKeys(self)
        self.organisations = Organisations(self)
        database.initialize(db)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        timeout: float = DEFAULT_TIMEOUT,
        on_unavailable: OnUnavailable = _ignore,
        tracer: trace.Tracer | None = None,
        read_cache_mib: int = DEFAULT_MIB,
        on_statement: Callable[[], None] | None = None,
    ) -> Store:
        """The Store of the database a URL names: sqlite:///PATH or postgresql://...;
        it keeps List pages and Detail's conversations in `read_cache_mib` MiB (ReadCache).
        `on_statement` is called as each SQL statement is sent."""
        path = sqlite_path(url)
        file = None if path is None else DatabaseFile(path)
        db, write_connection = connect(
            url,
            sqlite_synchronous=sqlite_synchronous,
            timeout=timeout,
            check=file.check if file is not None else lambda: None,
            on_statement=on_statement,
        )
        return cls(
            db,
            write_connection,
            timeout=timeout,
            on_unavailable=on_unavailable,
            file=file,
            tracer=tracer,
            read_cache=ReadCache(read_cache_mib * 2**20),
        )

    def close(self) -> None:
        """Write the creates still queued, then close every connection."""
        self.batches.close(self.write_timeout)
        self._write_connection.close()
        self.db.close_all()  # type: ignore[attr-defined]  # a pooled database

    def _traced(self, operation: str, wait: Awaitable[Result]) -> Awaitable[Result]:
        """`wait` in a span named for its statement ("INSERT conversations") when tracing;
        else `wait` itself, untouched."""
        if self._tracer is None:
            return wait
        return self._in_span(self._tracer, operation, wait)

    async def _in_span(
        self, tracer: trace.Tracer, operation: str, wait: Awaitable[Result]
    ) -> Result:
        verb, _, table = operation.partition(" ")
        attributes = {
            **self._span_attributes,
            "db.operation.name": verb,
            "db.collection.name": table,
        }
        with tracer.start_as_current_span(
            operation, kind=trace.SpanKind.CLIENT, attributes=attributes
        ):
            return await wait

    @property
    def write_timeout(self) -> float:
        """Seconds a create may wait for its batch to be written."""
        return WRITE_TIMEOUT_FACTOR * self.timeout

    # Units of work

    def _on_unavailable(self, error: BaseException) -> None:
        self.faults.failed(error)
        self._count_unavailable(error)

    def _check_file(self) -> None:
        if self._file is not None:
            self._file.check()

    @contextmanager
    def session(self) -> Iterator[None]:
        """One unit of work that writes: a pooled connection and a transaction around it."""
        with translated(self._on_unavailable):
            self._check_file()
            with self.db.connection_context(), self.db.atomic():
                yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads only: a pooled connection, no transaction (nor SQLite's write lock)."""
        with translated(self._on_unavailable):
            self._check_file()
            with self.db.connection_context():
                yield

    @contextmanager
    def writing(self) -> Iterator[peewee.Database]:
        """The connection creates are written on, for this thread alone until the block ends."""
        with translated(self._on_unavailable), self._write_connection.use() as db:
            yield db

    def ping(self) -> None:
        """One bounded round trip to the database; StorageUnavailable when it fails.

        It checks what creates need: the connection they are written on, in a write
        transaction. On SQLite that takes the write lock, so a database another
        process holds locked counts as unavailable, as it is for creates. While a
        fault lasts it also writes (a row rewritten with its own value), and counts as
        unavailable until such a write succeeds with no call failing since the probe
        before (see FaultPeriods).
        """
        with self.writing() as db, db.atomic():
            if self.faults.failing:
                db.execute_sql(_PROBE_WRITE.replace("%s", db.param), ("page_token",))  # type: ignore[no-untyped-call]
            else:
                db.execute_sql("SELECT 1")  # type: ignore[no-untyped-call]
        if not self.faults.probe_succeeded():
            raise unavailable("writes failing")

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied."""
        with translated(self._on_unavailable), self.db.connection_context():
            applied = apply_migrations(self.db)
        if self._file is not None:
            self._file.track()
        return applied

    # Conversations

    async def insert_conversation(self, pending: PendingCreate) -> StoredCreate:
        """Store a new conversation; returns once the statement holding it has committed.

        Concurrent calls share one statement (group commit), written by the writer's
        own thread. A create whose (created_by, request_id) is taken stores nothing
        and returns what is stored under it. Traced, its span is the caller's wait for
        the batch holding it, from queued to committed: a span per call, not per batch.
        """
        return await self._submit("INSERT conversations", self.batches.creates, pending)

    async def read_conversation(
        self, conversation_id: int, answers: int, trkref: str | None = None, role: str = SHOPPER
    ) -> Conversation | None:
        """A conversation with its `answers` oldest answers as `role` sees them, off the
        event loop (see _read); with `trkref`, None for a conversation of another
        organisation, found by the same one statement."""
        return await self._traced(
            "SELECT conversations",
            self._read(self._get_conversation, (conversation_id, answers, trkref, role)),
        )

    def _get_conversation(self, asked: tuple[int, int, str | None, str]) -> Conversation | None:
        conversation_id, answers, trkref, role = asked
        return detail.get_conversation(conversation_id, answers, self.read_cache, trkref, role)

    async def read_answers(self, query: AnswerQuery) -> AnswerPage | None:
        """A page of a conversation's answers; None when the conversation is not one of
        `query.trkref`'s (see _read)."""
        return await self._traced("SELECT answers", self._read(self._read_answers, query))

    def _read_answers(self, query: AnswerQuery) -> AnswerPage | None:
        return detail.read_answer_page(query, self.read_cache)

    async def read_page(self, query: PageQuery) -> ConversationPage:
        """A page of a product's conversations and its counts (see _read)."""
        return await self._traced("SELECT conversations", self._read(self._read_page, query))

    def _read_page(self, query: PageQuery) -> ConversationPage:
        return listing.read_page(query, self.read_cache)

    def run_read(self, read: Callable[[Arg], Result], arg: Arg) -> Awaitable[Result]:
        """A read of another storage room, as the Store's own reads are run (_read)."""
        return self._read(read, arg)

    async def _read(self, read: Callable[[Arg], Result], arg: Arg) -> Result:
        """A read in a thread: the event loop never waits on a PostgreSQL round trip. On
        SQLite, on the loop: a read of the embedded file never waits for a writer (WAL)
        and costs less than handing it to a thread and back (docs/performance.md)."""
        if self._embedded:
            return self._read_on_this_thread(read, arg)
        return await asyncio.to_thread(self._read_pooled, read, arg)

    def _read_pooled(self, read: Callable[[Arg], Result], arg: Arg) -> Result:
        with self.reading():
            return read(arg)

    def _read_on_this_thread(self, read: Callable[[Arg], Result], arg: Arg) -> Result:
        """A read on the connection this thread keeps open (the event loop's, on SQLite):
        taking one from the pool and giving it back costs about as much as a Detail's
        queries (docs/performance.md). Errors are translated as `translated` does, without
        its generator."""
        try:
            self._check_file()
            if self.db.is_closed():
                self.db.connect()
            return read(arg)
        except DATABASE_ERRORS as error:
            raise as_domain_error(error, self._on_unavailable) from error

    async def conversation_stamp(
        self, trkref: str, conversation_id: int, role: str = SHOPPER
    ) -> Stamp | None:
        """The stamp of a conversation's product, read alone (see _read)."""
        asked = (trkref, conversation_id, role)
        return await self._traced(
            "SELECT conversation_count", self._read(stamps.conversation_stamp, asked)
        )

    async def product_stamp(self, trkref: str, sku: str, locale: str | None) -> Stamp:
        """The stamp of a product, read alone (see _read)."""
        asked = (trkref, sku, locale)
        return await self._traced(
            "SELECT conversation_count", self._read(stamps.product_stamp, asked)
        )

    async def page_token_secret(self) -> bytes:
        """The key page tokens are signed with, shared by every replica through the database."""
        if self._page_token_secret is None:
            self._page_token_secret = await asyncio.to_thread(self.read_secret, "page_token")
        return self._page_token_secret

    def read_secret(self, name: str) -> bytes:
        """A secret of the service's, made by a migration and shared by every replica."""
        with self.reading():
            return bytes.fromhex(ServiceSecretRow.get_by_id(name).value)

    def get_conversation(
        self, conversation_id: int, answers: int = ALL_ANSWERS
    ) -> Conversation | None:
        """A conversation with its `answers` oldest answers (all of them unless told), read on
        this thread: for the command line and tests, not the calls."""
        with self.reading():
            return detail.get_conversation(conversation_id, answers, self.read_cache)

    def count_conversations(self) -> int:
        with self.reading():
            return conversations.count_conversations()

    # Answers and votes

    async def insert_answer(self, pending: PendingAnswer) -> StoredAnswer | None:
        """Store an answer on the write connection, in a thread; None when its conversation
        is not one of its organisation's."""
        return await self._traced("INSERT answers", asyncio.to_thread(self._insert_answer, pending))

    def _insert_answer(self, pending: PendingAnswer) -> StoredAnswer | None:
        with self.writing() as db:
            return answers.insert_answer(db, pending)

    async def record_vote(self, vote: Vote) -> bool:
        """Count a vote; returns once the batch holding it has committed. False when its
        target is not one of its organisation's.

        Concurrent votes share one transaction (group commit), as creates do.
        """
        return await self._submit("UPDATE votes", self.batches.votes, vote)

    async def _submit(
        self, operation: str, writer: GroupCommit[Item, Outcome], item: Item
    ) -> Outcome:
        """`item`'s outcome once its batch has committed (traced as `operation`); a write
        that outlasts write_timeout, or a writer shutting down, is StorageUnavailable."""
        try:
            return await self._traced(operation, writer.submit(item, self.write_timeout))
        except (TimeoutError, Closed) as error:
            kind = "timed out" if isinstance(error, TimeoutError) else "shutting down"
            raise unavailable(kind) from error
