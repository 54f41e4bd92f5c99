"""Database errors as domain errors: the one place a peewee or driver error is translated.

A failure of the database itself is StorageUnavailable, which callers may retry:
down or unreachable, the connection lost, locked, a timeout, every pooled
connection busy, the disk full, the database read-only, its file deleted,
replaced or unreadable. Its message names the kind of fault only, never a host,
port, database name or path (those stay in the log). Any other database error (a
bug in a query, a row the schema refuses) is StorageFailed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import peewee
from playhouse.pool import MaxConnectionsExceeded

from server.service.errors import StorageFailed, StorageUnavailable

log = logging.getLogger(__name__)


class DatabaseFileMoved(peewee.OperationalError):
    """The SQLite file the service opened is no longer at its path (deleted or replaced)."""


UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)
# Every error a query may raise from the database or its driver.
DATABASE_ERRORS = (peewee.PeeweeException, MaxConnectionsExceeded)

# Told of each failure of the database itself (metrics count them).
OnUnavailable = Callable[[BaseException], None]

# SQLite's primary result codes that are faults of the database, not of a query.
_SQLITE_FAULTS = {
    5: "locked",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR
    11: "database file unreadable",  # SQLITE_CORRUPT
    13: "disk full",  # SQLITE_FULL
    14: "cannot open the database file",  # SQLITE_CANTOPEN
    26: "database file unreadable",  # SQLITE_NOTADB
}
# PostgreSQL's SQLSTATEs (and classes) that are faults of the database, not of a query.
_POSTGRES_FAULTS = {
    "53100": "disk full",
    "25006": "read-only",
    "57014": "timed out",
    "55P03": "locked",
    "40001": "conflict",
    "40P01": "conflict",
    "08": "connection lost",
    "53": "out of resources",
    "57": "shutting down",
}

# What a driver error without a code says, for the faults that have a name.
_TEXT_FAULTS = {
    "database is locked": "locked",
    "disk is full": "disk full",
    "no space left on device": "disk full",
    "readonly database": "read-only",
}


def _ignore(error: BaseException) -> None:
    pass


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error peewee wrapped, and what it was raised from or during."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # peewee keeps the driver's error as `orig`.
        pending += [a for a in (getattr(current, "orig", None),) if isinstance(a, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def fault(error: BaseException) -> str | None:
    """The kind of database fault an error is ("disk full", "connection lost", ...), or None
    for an error of a query."""
    found = _fault(error)
    return None if found is None else found[0]


def _fault(error: BaseException) -> tuple[str, BaseException] | None:
    """The kind of fault and the error that tells it. A failed ROLLBACK hides the error it
    followed (SQLite rolls back by itself on a full disk): that one counts."""
    for cause in _causes(error):
        if isinstance(cause, DatabaseFileMoved):
            return "database file deleted or replaced", cause
        if isinstance(cause, MaxConnectionsExceeded):
            return "too busy", cause
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(cause, sqlite3.Error) and code is not None and code & 0xFF in _SQLITE_FAULTS:
            return _SQLITE_FAULTS[code & 0xFF], cause
        pgcode = getattr(cause, "pgcode", None)
        for prefix in (pgcode, pgcode[:2]) if isinstance(pgcode, str) else ():
            if prefix in _POSTGRES_FAULTS:
                return _POSTGRES_FAULTS[prefix], cause
    if not isinstance(error, UNAVAILABLE_ERRORS):
        return None
    for text, kind in _TEXT_FAULTS.items():
        if text in str(error).lower():
            return kind, error
    # PostgreSQL's driver tells a connection that failed to open or broke by no code.
    drivers = [c for c in _causes(error) if not isinstance(c, peewee.PeeweeException)]
    if any(type(c).__module__.startswith("psycopg") for c in drivers):
        return "connection lost", drivers[0]
    return "unavailable", drivers[0] if drivers else error


def sequence_exhausted(error: BaseException) -> bool:
    """PostgreSQL's sequence of ids has reached its column's maximum (SQLSTATE 2200H)."""
    return any(getattr(cause, "pgcode", None) == "2200H" for cause in _causes(error))


def as_domain_error(
    error: BaseException, on_unavailable: OnUnavailable = _ignore
) -> StorageUnavailable | StorageFailed:
    """The domain error of a database error, the one translation of every path: a fault
    of the database is StorageUnavailable, told to `on_unavailable`; any other error is
    StorageFailed. The error's frames are dropped (see drop_frames)."""
    kind = fault(error)
    drop_frames(error)
    if kind is None:
        return StorageFailed(f"database error: {type(error).__name__}")
    on_unavailable(error)
    return unavailable(kind)


def unavailable(kind: str) -> StorageUnavailable:
    """The domain error of a database unavailable for a `kind` of fault ("timed out")."""
    return StorageUnavailable(f"database unavailable ({kind}); retry later")


@contextmanager
def translated(on_unavailable: OnUnavailable = _ignore) -> Iterator[None]:
    """Database errors raised in the block leave it as StorageUnavailable or StorageFailed."""
    try:
        yield
    except DATABASE_ERRORS as error:
        raise as_domain_error(error, on_unavailable) from error


def drop_frames(error: BaseException | None) -> None:
    """Clear the locals of the finished frames an error's tracebacks hold.

    The errors go to other threads, and live on in reference cycles until the
    garbage collector frees them, in whichever thread it runs, holding the GIL.
    A SQLite cursor among those locals then resets its statement, which waits for
    the connection while another thread uses it: every thread would stand still
    for as long as that thread waits on a locked database.
    """
    while error is not None:
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


class FaultPeriods:
    """Logs a database fault once when it begins and once when it ends, with the number
    of failures in between, instead of a line per failed call.

    A period begins with the first failure after a success. It ends with the next
    batch of creates written, or with a health probe's write when nothing failed
    since the probe before: on a full disk a one-row write may fit where batches
    do not, and must not be taken for a recovery while calls still fail.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0
        self._failures_seen_by_probe = 0

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._failures += 1
            if self._since is not None:
                return
            self._since = self._clock()
        kind, cause = _fault(error) or ("unavailable", error)
        log.warning(
            "database unavailable (%s): %s; calls fail with UNAVAILABLE and health reports "
            "NOT_SERVING until it recovers",
            kind,
            _first_line(cause),
        )

    def probe_succeeded(self) -> bool:
        """The health probe wrote: True when that ends the fault (or there is none)."""
        with self._lock:
            if self._since is not None and self._failures != self._failures_seen_by_probe:
                self._failures_seen_by_probe = self._failures
                return False
        self.succeeded()
        return True

    def succeeded(self) -> None:
        """A write succeeded: the fault, if any, is over."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            seconds, failures = self._clock() - self._since, self._failures
            self._since, self._failures, self._failures_seen_by_probe = None, 0, 0
        log.info(
            "database available again, health reports SERVING: %d failures in %.1f s",
            failures,
            seconds,
        )


def _first_line(error: BaseException) -> str:
    """What the driver said, first line only: for the operator's log, never for callers."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
