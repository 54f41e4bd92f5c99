"""Helpers for the test databases."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import peewee
import psycopg2
import pytest

from server.storage import conversations
from server.storage.store import Store

# The PostgreSQL server the machine runs (trust auth); CI starts it. Tests
# that need it fail, never skip, when it is down.
POSTGRES_ADMIN_URL = os.environ.get(
    "CONVERSATION_SERVICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def fresh_postgres(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, named `prefix` and a random suffix;
    dropped after, whoever is still connected."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.close()


def empty_postgres(url: str) -> None:
    """Delete every row of a migrated PostgreSQL database, and restart its ids."""
    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE vote, report, answer, conversation, api_key_organisation, api_key,"
                " organisation RESTART IDENTITY CASCADE"
            )
    finally:
        connection.close()


class BatchesBegun:
    """Counts the batches of creates the stores start to write, from now until the test
    ends: the writer of a batch begun then waits on a lock write_lock_held holds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self._changed = threading.Condition()
        insert = conversations.insert_conversations

        def counted(db: peewee.Database, batch: list[Any]) -> Any:
            with self._changed:
                self.sizes.append(len(batch))
                self._changed.notify_all()
            return insert(db, batch)

        monkeypatch.setattr(conversations, "insert_conversations", counted)

    def wait(self, count: int) -> None:
        """Block until `count` batches have begun; fail after 10 s."""
        with self._changed:
            begun = self._changed.wait_for(lambda: len(self.sizes) >= count, 10)
            assert begun, f"{len(self.sizes)} batches begun, not {count}"


def wait_until_queued(store: Store, count: int) -> None:
    """Block until `count` creates wait in the store's queue, behind the batch being written."""
    writer = store.batches.creates
    deadline = time.monotonic() + 10
    while writer.queued() < count:
        assert time.monotonic() < deadline, f"{writer.queued()} creates queued, not {count}"
        time.sleep(0.01)  # polling the queue


@contextlib.contextmanager
def write_lock_held(store: Store) -> Iterator[Callable[[], None]]:
    """Another connection holds the conversation table's write lock; yields its release."""
    db = store.db
    sqlite = isinstance(db, peewee.SqliteDatabase)
    if sqlite:
        other: Any = sqlite3.connect(db.database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
    else:
        other = psycopg2.connect(dbname=db.database, **db.connect_params)
        other.cursor().execute("LOCK TABLE conversation IN EXCLUSIVE MODE")
    try:
        yield lambda: other.execute("ROLLBACK") if sqlite else other.rollback()
    finally:
        other.close()
