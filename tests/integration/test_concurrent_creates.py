"""Creates written together by the group commit, on real SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime
import gc
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import peewee
import pytest

from harness.databases import BatchesBegun, wait_until_queued, write_lock_held
from harness.support import (
    CALLER,
    ORGANISATION,
    add_organisation_with_key,
    create,
    insert,
    store_key,
)
from harness.support import NEW_CONVERSATION as SEED
from server.service import api_keys, conversations
from server.service.domain import (
    Conversation,
    NewConversation,
    Organisation,
    PendingCreate,
    StoredCreate,
)
from server.service.errors import StorageFailed, StorageUnavailable
from server.storage.database import SharedConnection
from server.storage.store import Store

REQUEST_ID = "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"


def create_many(store: Store, count: int, threads: int = 16) -> list[Conversation]:
    with ThreadPoolExecutor(threads) as pool:
        return list(
            pool.map(
                lambda n: create(
                    store,
                    NewConversation(
                        trkref="D10", first_name=f"Shopper {n}", question="Q?", sku="S"
                    ),
                    CALLER,
                ),
                range(count),
            )
        )


def test_concurrent_creates_are_each_stored_once_as_returned(
    store: Store, organisation: Organisation
) -> None:
    created = create_many(store, 400)

    assert len({c.id for c in created}) == 400
    assert [c.first_name for c in created] == [f"Shopper {n}" for n in range(400)]
    assert store.count_conversations() == 400
    assert all(store.get_conversation(c.id) == c for c in created)


def assert_each_fifth_fails_alone(store: Store, bad: PendingCreate, refused: str) -> None:
    """50 concurrent creates, each fifth of them `bad`: only those fail, with StorageFailed
    for the database's `refused` error."""
    good = replace(bad, new=SEED, organisation=ORGANISATION)
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(insert, store, bad if n % 5 == 0 else good)
                   for n in range(50)]  # fmt: skip
    failed = [f.exception() for f in futures[::5]]
    stored = [f.result().conversation for n, f in enumerate(futures) if n % 5]

    assert all(isinstance(e, StorageFailed) for e in failed)
    assert {str(e) for e in failed} == {f"database error: {refused}"}
    assert len({c.id for c in stored}) == 40
    assert store.count_conversations() == 40


def test_a_row_that_fails_fails_alone(store: Store, organisation: Organisation) -> None:
    # An organisation removed after it was looked up: its row cannot be written.
    gone = Organisation(trkref="GONE", name="Gone", locale="fr-FR")
    asked = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    pending = PendingCreate(SEED, gone, asked, CALLER.key_id)
    assert_each_fifth_fails_alone(store, pending, "IntegrityError")


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_row_the_database_refuses_fails_alone(store: Store, organisation: Organisation) -> None:
    # Validation keeps such a row out; PostgreSQL refuses an sku over its 100 characters.
    asked = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    too_long = replace(SEED, sku="S" * 101)
    pending = PendingCreate(too_long, organisation, asked, CALLER.key_id)
    assert_each_fifth_fails_alone(store, pending, "DataError")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_failing_batch_is_unavailable_for_every_caller(
    store: Store, organisation: Organisation
) -> None:
    create(store, SEED, CALLER)  # looks D10 up while the database is free
    # SQLite gives up on the lock after its busy timeout (2 s): the batch fails.
    with write_lock_held(store), ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(create, store, SEED, CALLER) for _ in range(8)]
        errors = [f.exception() for f in futures]

    assert all(isinstance(error, StorageUnavailable) for error in errors)
    assert store.count_conversations() == 1


def test_closing_writes_the_creates_still_queued(
    store: Store, organisation: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(store, SEED, CALLER)
    batches = BatchesBegun(monkeypatch)
    with write_lock_held(store) as release, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(create, store, SEED, CALLER) for _ in range(16)]
        batches.wait(1)  # the writer waits on the lock; the other creates queue behind it
        wait_until_queued(store, 16 - batches.sizes[0])
        closing = threading.Thread(target=store.close)
        closing.start()
        release()
        closing.join(10)
        created = [f.result(10) for f in futures]

    assert len({c.id for c in created}) == 16
    # close() closed every pooled connection, this thread's too (its creates read on it, as
    # an event loop's thread does on SQLite): the count takes a new one.
    store.db.close()
    assert store.count_conversations() == 17


def test_one_batch_of_revoked_active_and_retried_creates(
    store: Store, organisation: Organisation
) -> None:
    store_key(store, "revoked", "D10")
    asked = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    first = create(store, replace(SEED, request_id=REQUEST_ID), CALLER)
    api_keys.revoke_key(store, "revoked")

    def pending(by: str, n: int, request_id: str | None = None) -> PendingCreate:
        new = replace(SEED, first_name=f"Shopper {n}", request_id=request_id)
        digest = conversations.request_digest(new) if request_id else None
        return PendingCreate(new, organisation, asked, by, digest)

    twin = str(uuid.uuid4())
    batch = [
        pending("revoked", 0),
        pending(CALLER.key_id, 1),
        pending(CALLER.key_id, 2, twin),
        pending("revoked", 3, str(uuid.uuid4())),
        pending(CALLER.key_id, 4, twin),  # the same request again, in the same batch
        pending(CALLER.key_id, 5),
    ]
    batch.append(replace(batch[1], new=replace(SEED, request_id=REQUEST_ID)))  # a retry

    outcomes = store.batches.write_conversations(batch)

    assert [type(o).__name__ for o in outcomes] == [
        "Unauthenticated",
        *["StoredCreate"] * 2,
        "Unauthenticated",
        *["StoredCreate"] * 3,
    ]
    stored = [o.conversation for o in outcomes if isinstance(o, StoredCreate)]
    assert [c.first_name for c in stored] == [
        "Shopper 1",
        "Shopper 2",
        "Shopper 2",
        "Shopper 5",
        "Ann",
    ]
    assert stored[1] == stored[2] and stored[4] == first
    assert all(store.get_conversation(c.id) == c for c in stored)
    assert store.count_conversations() == 4


def test_a_failed_write_leaves_nothing_that_stalls_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failed statement's cursor, kept alive by its error's traceback, would
    # reset its statement when the garbage collector frees it: holding the GIL,
    # it waited for the connection another create was using, waiting on the lock,
    # until that create gave up. So the collection ends while the create still
    # waits, and the create, once the lock is let go, is written.
    store = Store.open(f"sqlite:///{tmp_path}/conversations.db", timeout=5)
    store.migrate()
    add_organisation_with_key(store)
    create(store, SEED, CALLER)  # looks D10 up while the database is free
    writing = threading.Event()
    begin = peewee.SqliteDatabase.begin

    def tell_when_writing(db: peewee.SqliteDatabase, *args: Any) -> Any:
        writing.set()  # it takes the write lock next
        return begin(db, *args)

    gc.collect()
    gc.disable()
    try:
        with write_lock_held(store) as release:
            with pytest.raises(StorageUnavailable):
                create(store, SEED, CALLER)
            monkeypatch.setattr(peewee.SqliteDatabase, "begin", tell_when_writing)
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(create, store, SEED, CALLER)
                assert writing.wait(10)  # on the connection just returned
                gc.collect()
                still_waiting = not waiting.done()
                release()
                created = waiting.result(10)
    finally:
        gc.enable()
        monkeypatch.undo()
        store.close()

    assert still_waiting, "the collection waited for the create to give up on the lock"
    assert created.id == 2


def test_a_create_waits_for_the_database_probe_not_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe of the database health takes SQLite's write lock. On a connection
    # of its own, a batch finding the lock taken waited in SQLite's busy handler,
    # which sleeps in steps of up to 100 ms, and failed after the busy timeout.
    store = Store.open(f"sqlite:///{tmp_path}/conversations.db", timeout=0.2)
    store.migrate()
    add_organisation_with_key(store)
    create(store, SEED, CALLER)  # looks D10 up while the database is free
    probing = threading.Event()
    execute_sql = peewee.Database.execute_sql

    def probe_held_for_half_a_second(db: peewee.Database, sql: str, *args: Any) -> Any:
        if sql == "SELECT 1" and threading.current_thread().name == "probe":
            probing.set()
            time.sleep(0.5)  # longer than the busy timeout, shorter than the write timeout
        return execute_sql(db, sql, *args)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(peewee.Database, "execute_sql", probe_held_for_half_a_second)
    probe = threading.Thread(target=store.ping, name="probe")
    try:
        probe.start()
        assert probing.wait(5)
        created = create(store, SEED, CALLER)
    finally:
        probe.join(5)
        monkeypatch.undo()
        store.close()

    assert created.id == 2


def wait_for_the_connection(besides: threading.Thread) -> None:
    """Block until a thread other than `besides` waits to use the shared write connection:
    is inside SharedConnection.use, whose lock `besides` holds."""
    use = SharedConnection.use.__wrapped__.__code__  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for thread_id, frame in sys._current_frames().items():
            stack = traceback.walk_stack(frame)
            if thread_id != besides.ident and any(f.f_code is use for f, _ in stack):
                return
        time.sleep(0.01)  # polling the threads' stacks
    raise AssertionError("no thread waited for the write connection in 10 s")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_create_waiting_behind_a_failing_probe_fails_without_waiting_again(
    store: Store, organisation: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(store, SEED, CALLER)  # looks D10 up while the database is free
    probing, fail = threading.Event(), threading.Event()
    executed: list[str] = []
    execute_sql = peewee.Database.execute_sql

    def probe_fails_when_told(db: peewee.Database, sql: str, *args: Any) -> Any:
        if sql == "SELECT 1" and threading.current_thread().name == "probe":
            probing.set()
            fail.wait(5)
            raise peewee.OperationalError("database is locked")
        executed.append(sql)
        return execute_sql(db, sql, *args)  # type: ignore[no-untyped-call]

    def probe() -> None:
        with contextlib.suppress(StorageUnavailable):
            store.ping()

    monkeypatch.setattr(peewee.Database, "execute_sql", probe_fails_when_told)
    prober = threading.Thread(target=probe, name="probe")
    prober.start()
    try:
        assert probing.wait(5)
        with ThreadPoolExecutor(1) as pool:
            creating = pool.submit(create, store, SEED, CALLER)
            wait_for_the_connection(besides=prober)  # the writer waits for the probe's turn
            fail.set()
            error = creating.exception(5)
    finally:
        fail.set()
        prober.join(5)

    assert isinstance(error, StorageUnavailable) and "(locked)" in str(error)
    assert not [sql for sql in executed if sql.startswith("INSERT")]
