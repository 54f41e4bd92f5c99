"""Connections to the database: opening and closing it, units of work, the probe, migrations.

Every failure of the database itself (down, locked, a timeout) leaves here as
StorageUnavailable, which callers may retry; storage.py holds the queries.
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.migrations import Runner
from playhouse.pool import MaxConnectionsExceeded

from server.errors import StorageUnavailable
from server.models import database

MIGRATIONS = Path(__file__).parent / "migrations"

# Failures of the database itself (down, locked, connection lost, every pooled
# connection busy past the timeout), as opposed to a bug in a query: the caller
# may retry them.
_UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)

# The options of a pool, not of a connection.
_POOL_OPTIONS = ("max_connections", "stale_timeout", "timeout")

# Seconds a database call may take before it fails as unavailable.
DEFAULT_TIMEOUT = 2.0

# Told of each error that made a unit of work fail as unavailable (metrics count them).
unavailable_listeners: list[Callable[[BaseException], None]] = []

# Run first by close_database, the connections still open (storage's: write the
# creates still queued).
before_close: list[Callable[[], None]] = []

_timeout = DEFAULT_TIMEOUT

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
    global _timeout
    _timeout = timeout
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
    # Creates are written on a connection of their own, kept open: taking one from
    # the pool and giving it back cost more than the rest of a small batch.
    unpooled = {k: v for k, v in options.items() if k not in _POOL_OPTIONS}
    _write_connections[db] = _SharedConnection(db_url.connect(url, thread_safe=False, **unpooled))
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
    """Finish what is pending (before_close: the creates still queued), then close every
    connection."""
    for finish in before_close:
        finish()
    shared = _write_connections.get(database.obj)
    if shared is not None:
        shared.close()
    database.obj.close_all()


def timeout() -> float:
    """Seconds each wait on the database may take, as open_database was given."""
    return _timeout


@contextmanager
def failures_as_unavailable() -> Iterator[None]:
    """Failures of the database itself, in the block, as StorageUnavailable."""
    try:
        yield
    except _UNAVAILABLE_ERRORS as error:
        drop_frames(error)
        for listener in unavailable_listeners:
            listener(error)
        raise StorageUnavailable(f"database unavailable: {error}") from error


@contextmanager
def session() -> Iterator[None]:
    """One unit of work that writes: a pooled connection and a transaction around it."""
    with failures_as_unavailable(), database.connection_context(), database.atomic():
        yield


@contextmanager
def reading() -> Iterator[None]:
    """Reads only: a pooled connection, no transaction (nor SQLite's write lock)."""
    with failures_as_unavailable(), database.connection_context():
        yield


def ping() -> None:
    """One bounded round trip to the database; raises StorageUnavailable when it fails.

    It checks what creates need: the connection they are written on, in a write
    transaction. On SQLite that takes the write lock, so a database another
    process holds locked counts as unavailable, as it is for creates.
    """
    with write_connection() as db, db.atomic():
        db.execute_sql("SELECT 1")  # type: ignore[no-untyped-call]


def migrate() -> list[str]:
    """Apply pending migrations; returns the names applied. StorageUnavailable when the
    database fails (down, or a lock or statement past the timeout)."""
    with failures_as_unavailable(), database.connection_context(), _migrating_alone():
        return list(Runner(database.obj, str(MIGRATIONS)).up())


# The key of the PostgreSQL advisory lock migrations take turns under: any constant.
_MIGRATION_LOCK = 0x636F6E76
# Seconds a process waits for another one's migrations before it gives up.
MIGRATION_LOCK_WAIT = 60.0


@contextmanager
def _migrating_alone() -> Iterator[None]:
    """On PostgreSQL, processes that migrate at once take turns; the later ones find
    nothing left to apply. Replicas starting together both migrate, and one of them
    failed on the tables the other had just created. Held on this thread's connection.
    SQLite's file has one serving process."""
    db = database.obj
    if not isinstance(db, peewee.PostgresqlDatabase):
        yield
        return

    def advisory(function: str) -> bool:
        """pg_try_advisory_lock or pg_advisory_unlock of the migrations' key: done or not."""
        cursor = db.execute_sql(f"SELECT {function}(%s)", (_MIGRATION_LOCK,))  # type: ignore[no-untyped-call]
        return bool(cursor.fetchone()[0])

    deadline = time.monotonic() + MIGRATION_LOCK_WAIT
    while not advisory("pg_try_advisory_lock"):
        if time.monotonic() > deadline:
            raise StorageUnavailable(
                f"another process has been migrating the database for {MIGRATION_LOCK_WAIT:.0f} s"
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        advisory("pg_advisory_unlock")


def drop_frames(error: BaseException | None) -> None:
    """Clear the locals of the finished frames an error's tracebacks hold.

    The errors go to other threads, and live on in reference cycles until the
    garbage collector frees them, in whichever thread it runs, holding the GIL.
    A SQLite cursor among those locals then resets its statement, which waits for
    the connection while another thread uses it: every thread stood still for as
    long as that thread waited on a locked database.
    """
    while error is not None:
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


class _SharedConnection:
    """A connection kept open, which threads take turns to use.

    Creates are written on it, one batch at a time, and the database probe
    checks it between batches. Were the probe to take SQLite's write lock on a
    connection of its own, a batch finding the lock taken would sleep in
    SQLite's busy handler, in steps of up to 100 ms, long after the probe let go:
    every create stood still for 50 to 500 ms, about once a second.
    """

    def __init__(self, db: peewee.Database) -> None:
        self._db = db  # thread_safe=False: one state, whichever thread uses it
        self._lock = threading.Lock()
        self._failures = 0
        self._failure = ""

    @contextmanager
    def use(self) -> Iterator[peewee.Database]:
        """The connection, for this thread alone until the block ends."""
        failures = self._failures
        with self._lock:
            if self._failures != failures:
                # It failed as unavailable while this thread waited for it: do not
                # wait on a database that is down or locked a second time.
                raise StorageUnavailable(f"database unavailable: {self._failure}")
            try:
                self._db.connect(reuse_if_open=True)
                yield self._db
            except _UNAVAILABLE_ERRORS as error:
                self._failures += 1
                self._failure = str(error)  # not the error: its frames hold cursors
                # A PostgreSQL connection that failed may be broken: the next user
                # opens another. SQLite's (locked, say) is fine, and reopening it
                # would wait on the lock again for its pragmas.
                if not isinstance(self._db, peewee.SqliteDatabase):
                    self._db.close()
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


# Each database open_database made, and the connection creates are written on.
_write_connections: weakref.WeakKeyDictionary[peewee.Database, _SharedConnection] = (
    weakref.WeakKeyDictionary()
)


@contextmanager
def write_connection() -> Iterator[peewee.Database]:
    """The connection creates are written on, for this thread alone until the block ends;
    its failures as StorageUnavailable."""
    with failures_as_unavailable(), _write_connections[database.obj].use() as db:
        yield db
