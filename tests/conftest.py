"""Fixtures that build real objects: real SQLite files, a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from server import api_keys, connections, conversations, organisations, storage
from server.conversations import Clock
from server.domain import ApiKey, Caller, Conversation, NewConversation, Organisation
from tests.databases import empty_postgres, fresh_postgres

ORGANISATION = Organisation(trkref="D10", name="Demo retailer", locale="en-GB")
# A caller whose key reaches D10 only.
CALLER = Caller(key_id="test-key", organisations=frozenset({"D10"}))


def create(
    new: NewConversation, caller: Caller, clock: Clock = conversations.utc_now
) -> Conversation:
    """conversations.create_conversation run to completion on an event loop of this thread's own."""
    return asyncio.run(conversations.create_conversation(new, caller, clock))


def insert(pending: storage.PendingCreate) -> storage.StoredCreate:
    """storage.insert_conversation run to completion on an event loop of this thread's own."""
    return asyncio.run(storage.insert_conversation(pending))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database that lives for the test session."""
    with fresh_postgres("conversations_test") as url:
        connections.open_database(url)
        connections.migrate()
        connections.close_database()
        yield url


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[peewee.Database]:
    db = connections.open_database(postgres_url)
    yield db
    storage.database.initialize(db)
    connections.close_database()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database the models are bound to; yields its kind."""
    if request.param == "sqlite":
        connections.open_database(f"sqlite:///{tmp_path}/conversations.db")
        connections.migrate()
        yield "sqlite"
        connections.close_database()
    else:
        empty_postgres(request.getfixturevalue("postgres_database"))
        yield "postgres"


# One scrypt hash for every key the tests store directly: hashing is slow on purpose.
_TEST_SECRET_HASH = api_keys.hash_secret("test-secret")


def store_key(key_id: str, *trkrefs: str) -> Caller:
    """An active API key for these stored organisations (secret: test-secret)."""
    with connections.session():
        storage.insert_api_key(
            ApiKey(
                key_id=key_id,
                organisations=frozenset(trkrefs),
                created_at=datetime.datetime.now(datetime.UTC),
                revoked_at=None,
                secret_hash=_TEST_SECRET_HASH,
            )
        )
    return Caller(key_id=key_id, organisations=frozenset(trkrefs))


@pytest.fixture
def organisation(database: str) -> Organisation:
    """The demo retailer D10 (en-GB), stored, with CALLER's key."""
    added = organisations.add_organisation(ORGANISATION)
    store_key(CALLER.key_id, added.trkref)
    return added
