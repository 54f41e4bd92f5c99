"""Helpers for the test databases."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import peewee
import psycopg2

from server import storage


def empty_postgres(db: peewee.Database) -> None:
    """Bind the models to the session's PostgreSQL database and delete every row."""
    storage.database.initialize(db)
    with storage.database.connection_context():
        storage.database.execute_sql(
            "TRUNCATE answer, conversation, api_key_organisation, api_key, organisation "
            "RESTART IDENTITY CASCADE"
        )


@contextlib.contextmanager
def write_lock_held(kind: str) -> Iterator[Callable[[], None]]:
    """Another connection holds the conversation table's write lock; yields its release."""
    db = storage.database.obj
    if kind == "sqlite":
        other: Any = sqlite3.connect(db.database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
    else:
        other = psycopg2.connect(dbname=db.database, **db.connect_params)
        other.cursor().execute("LOCK TABLE conversation IN EXCLUSIVE MODE")
    try:
        yield lambda: other.execute("ROLLBACK") if kind == "sqlite" else other.rollback()
    finally:
        other.close()
