"""Database errors as domain errors: the one place a peewee or driver error is translated.

A failure of the database itself (down, locked, a timeout, every pooled
connection busy) is StorageUnavailable, which callers may retry; any other
database error (a bug in a query, a row the schema refuses) is StorageFailed.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import peewee
from playhouse.pool import MaxConnectionsExceeded

from server.service.errors import StorageFailed, StorageUnavailable

UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)
# Every error a query may raise from the database or its driver.
DATABASE_ERRORS = (peewee.PeeweeException, MaxConnectionsExceeded)

# Told of each failure of the database itself (metrics count them).
OnUnavailable = Callable[[BaseException], None]


def _ignore(error: BaseException) -> None:
    pass


def as_domain_error(error: BaseException) -> StorageUnavailable | StorageFailed:
    """The domain error of a database error; its frames are dropped (see drop_frames)."""
    drop_frames(error)
    if isinstance(error, UNAVAILABLE_ERRORS):
        return StorageUnavailable(f"database unavailable: {error}")
    return StorageFailed(f"database error: {type(error).__name__}")


@contextmanager
def translated(on_unavailable: OnUnavailable = _ignore) -> Iterator[None]:
    """Database errors raised in the block leave it as StorageUnavailable or StorageFailed."""
    try:
        yield
    except DATABASE_ERRORS as error:
        domain_error = as_domain_error(error)
        if isinstance(domain_error, StorageUnavailable):
            on_unavailable(error)
        raise domain_error from error


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
