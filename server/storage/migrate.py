"""Schema migrations: peewee's runner over the scripts in migrations/, one process at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import peewee
from playhouse.migrations import Runner

from server.package_data import MIGRATIONS
from server.service.errors import StorageUnavailable

# The key of the PostgreSQL advisory lock migrations take turns under: any constant.
_MIGRATION_LOCK = 0x636F6E76
# Seconds a process waits for another one's migrations before it gives up.
MIGRATION_LOCK_WAIT = 60.0


def apply_migrations(db: peewee.Database) -> list[str]:
    """Apply the pending migrations on this thread's connection; returns the names applied."""
    with _migrating_alone(db):
        return list(Runner(db, str(MIGRATIONS)).up())


@contextmanager
def _migrating_alone(db: peewee.Database) -> Iterator[None]:
    """On PostgreSQL, processes that migrate at once take turns; the later ones find
    nothing left to apply (replicas starting together would otherwise both create the
    same tables). SQLite's file has one serving process."""
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
