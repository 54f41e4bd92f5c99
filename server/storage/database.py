"""Connecting to the database a URL names: the pool, its settings, and the shared write connection.

Every wait on the database is bounded by one timeout: for a pooled
connection, for a lock, for a statement, for a connection to open.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse import db_url

from server.storage.errors import UNAVAILABLE_ERRORS, DatabaseFileMoved, fault, unavailable

# Seconds a database call may take before it fails as unavailable.
DEFAULT_TIMEOUT = 2.0

# The options of a pool, not of a connection.
_POOL_OPTIONS = ("max_connections", "stale_timeout", "timeout")

# Pooled connections: a call does not pay for opening a connection.
_POOLED_SCHEMES = {
    "sqlite": "sqlite+pool",
    "postgres": "postgresql+pool",
    "postgresql": "postgresql+pool",
}


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:///PATH URL; None for PostgreSQL or an in-memory database."""
    parsed = urlparse(url)
    if not parsed.scheme.startswith("sqlite"):
        return None
    path = url.split("://", 1)[1][1:]
    return Path(path) if path and path != ":memory:" else None


def connect(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    timeout: float = DEFAULT_TIMEOUT,
    check: Callable[[], None] = lambda: None,
    on_statement: Callable[[], None] | None = None,
) -> tuple[peewee.Database, SharedConnection]:
    """The pooled Database a URL names, and the connection creates are written on (which
    runs `check` before each use); `on_statement` is called as each statement is sent."""
    parsed = urlparse(url)
    scheme = _POOLED_SCHEMES.get(parsed.scheme, parsed.scheme)
    options: dict[str, object] = {
        "max_connections": 64,
        "stale_timeout": 600,
        "timeout": max(1, round(timeout)),
    }
    if scheme.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        options.update(_sqlite_options(timeout, sqlite_synchronous))
    else:
        options.update(_postgres_timeouts(timeout))
    pooled: peewee.Database = db_url.connect(scheme + url[len(parsed.scheme) :], **options)
    # Creates are written on a connection of their own, kept open: taking one from
    # the pool and giving it back cost more than the rest of a small batch.
    unpooled = {k: v for k, v in options.items() if k not in _POOL_OPTIONS}
    shared: peewee.Database = db_url.connect(url, thread_safe=False, **unpooled)
    if on_statement is not None:
        for db in (pooled, shared):
            _count_statements(db, on_statement)
    return pooled, SharedConnection(shared, check)


def _count_statements(db: peewee.Database, on_statement: Callable[[], None]) -> None:
    """Have every statement `db` sends (peewee sends each through execute_sql) call
    `on_statement` first."""
    execute_sql: Callable[..., Any] = db.execute_sql

    def counted(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        on_statement()
        return execute_sql(sql, params, *args, **kwargs)

    db.execute_sql = counted  # type: ignore[method-assign]


def _sqlite_options(timeout: float, synchronous: str) -> dict[str, object]:
    return {
        "pragmas": {
            # First: the pragmas after it may wait for a lock too.
            "busy_timeout": round(timeout * 1000),
            "journal_mode": "wal",
            # FULL: a committed create survives power loss, not only a crash.
            "synchronous": synchronous,
            "foreign_keys": 1,
        },
        "check_same_thread": False,
        # Take the write lock at BEGIN: a deferred transaction that reads, then
        # writes after another connection committed, fails at once with
        # "database is locked" instead of waiting for busy_timeout.
        "lock_type": "IMMEDIATE",
    }


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


class SharedConnection:
    """A connection kept open, which threads take turns to use.

    Creates are written on it, one batch at a time, and the database probe
    checks it between batches. Were the probe to take SQLite's write lock on a
    connection of its own, a batch finding the lock taken would sleep in
    SQLite's busy handler, in steps of up to 100 ms, long after the probe let go.
    """

    def __init__(self, db: peewee.Database, check: Callable[[], None] = lambda: None) -> None:
        self._db = db  # thread_safe=False: one state, whichever thread uses it
        self._check = check
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
                raise unavailable(self._failure)
            try:
                self._check()
                self._db.connect(reuse_if_open=True)
                yield self._db
            except UNAVAILABLE_ERRORS as error:
                self._failures += 1
                # Not the error: its frames hold cursors.
                self._failure = fault(error) or "unavailable"
                # A PostgreSQL connection that failed may be broken: the next user
                # opens another. SQLite's (locked, say) is fine, and reopening it
                # would wait on the lock again for its pragmas.
                if not isinstance(self._db, peewee.SqliteDatabase):
                    self._db.close()
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


class DatabaseFile:
    """The SQLite file a Store works on, and whether it is still the file at its path.

    SQLite goes on writing to a file deleted while it is open, and all of it is lost
    at the next start; nor does it notice a file replaced under it. So every unit of
    work first compares the device and inode at the path with those of the file opened,
    and fails as unavailable while they differ: the same file put back (a hard link
    renamed into place) ends the fault; another file is opened by a restart only, since
    the connections to the old one, closing, would checkpoint and remove a WAL file
    that now belongs to the new one. Reads are checked too: a replica that read a file
    no longer at the path would serve what no other replica sees.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def _at_path(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def track(self) -> None:
        """From now on, the file at the path is the database (once it exists)."""
        self._identity = self._at_path()

    def check(self) -> None:
        """DatabaseFileMoved when the file tracked is no longer the one at its path."""
        if self._identity is not None and self._at_path() != self._identity:
            raise DatabaseFileMoved("the database file was deleted or replaced")
