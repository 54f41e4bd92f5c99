"""Creates written together by the group commit, on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import peewee
import pytest

from server import conversations, storage
from server.domain import Conversation, NewConversation, Organisation
from server.errors import StorageUnavailable
from tests.conftest import CALLER
from tests.databases import write_lock_held

SEED = NewConversation(trkref="D10", first_name="Ann", question="Fits?", sku="S1")


def create_many(count: int, threads: int = 16) -> list[Conversation]:
    with ThreadPoolExecutor(threads) as pool:
        return list(
            pool.map(
                lambda n: conversations.create_conversation(
                    NewConversation(
                        trkref="D10", first_name=f"Shopper {n}", question="Q?", sku="S"
                    ),
                    CALLER,
                ),
                range(count),
            )
        )


def test_concurrent_creates_are_each_stored_once_as_returned(organisation: Organisation) -> None:
    created = create_many(400)

    assert len({c.id for c in created}) == 400
    assert [c.first_name for c in created] == [f"Shopper {n}" for n in range(400)]
    with storage.session():
        assert storage.count_conversations() == 400
        assert all(storage.get_conversation(c.id) == c for c in created)


def test_a_row_that_fails_fails_alone(organisation: Organisation) -> None:
    # An organisation removed after it was looked up: its row cannot be written.
    gone = Organisation(trkref="GONE", name="Gone", locale="fr-FR")
    asked = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    pending = [
        storage.PendingCreate(SEED, gone if n % 5 == 0 else organisation, asked, CALLER.key_id)
        for n in range(50)
    ]

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(storage.insert_conversation, p) for p in pending]
    failed = [f.exception() for f in futures[::5]]
    stored = [f.result().conversation for n, f in enumerate(futures) if n % 5]

    assert all(isinstance(error, peewee.IntegrityError) for error in failed)
    assert len({c.id for c in stored}) == 40
    with storage.session():
        assert storage.count_conversations() == 40


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_failing_batch_is_unavailable_for_every_caller(organisation: Organisation) -> None:
    conversations.create_conversation(SEED, CALLER)  # looks D10 up while the database is free
    # SQLite gives up on the lock after its busy timeout (2 s): the batch fails.
    with write_lock_held("sqlite"), ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(conversations.create_conversation, SEED, CALLER) for _ in range(8)]
        errors = [f.exception() for f in futures]

    assert all(isinstance(error, StorageUnavailable) for error in errors)
    with storage.session():
        assert storage.count_conversations() == 1


def test_closing_writes_the_creates_still_queued(database: str, organisation: Organisation) -> None:
    conversations.create_conversation(SEED, CALLER)
    with write_lock_held(database) as release, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(conversations.create_conversation, SEED, CALLER) for _ in range(16)]
        time.sleep(0.2)  # the writer waits on the lock; the other creates queue behind it
        closing = threading.Thread(target=storage.close_database)
        closing.start()
        release()
        closing.join(10)
        created = [f.result(10) for f in futures]

    assert len({c.id for c in created}) == 16
    with storage.session():
        assert storage.count_conversations() == 17
