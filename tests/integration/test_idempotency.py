"""Idempotent creates: a retry with the same request_id returns the first conversation."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.databases import BatchesBegun, wait_until_queued, write_lock_held
from harness.support import CALLER, NEW_CONVERSATION, create, store_key
from server.service.domain import Conversation, NewConversation, Organisation
from server.service.errors import InvalidConversation, RequestIdReused
from server.storage.store import Store

REQUEST_ID = "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"
NEW = NewConversation(
    trkref="D10", first_name="Ann", question="Fits?", sku="S1", request_id=REQUEST_ID
)


def test_retry_returns_the_first_conversation_and_creates_nothing(
    store: Store, organisation: Organisation
) -> None:
    first = create(store, NEW, CALLER)
    retry = create(store, NEW, CALLER)
    assert retry == first
    assert store.count_conversations() == 1


def test_request_id_is_compared_as_a_uuid(store: Store, organisation: Organisation) -> None:
    first = create(store, NEW, CALLER)
    shouting = NewConversation(**{**NEW.__dict__, "request_id": REQUEST_ID.upper()})
    assert create(store, shouting, CALLER) == first


def test_same_request_id_with_another_body_is_already_exists(
    store: Store, organisation: Organisation
) -> None:
    create(store, NEW, CALLER)
    other = NewConversation(**{**NEW.__dict__, "question": "Does it fit a child?"})
    with pytest.raises(RequestIdReused):
        create(store, other, CALLER)
    assert store.count_conversations() == 1


def test_request_ids_belong_to_their_key(store: Store, organisation: Organisation) -> None:
    other_key = store_key(store, "other-key", "D10")
    mine = create(store, NEW, CALLER)
    theirs = create(store, NEW, other_key)
    assert theirs.id != mine.id
    assert store.count_conversations() == 2


def test_creates_without_request_id_are_all_stored(
    store: Store, organisation: Organisation
) -> None:
    plain = NEW_CONVERSATION
    ids = {create(store, plain, CALLER).id for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(
    "request_id", ["not-a-uuid", "1234", "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d2"]
)
def test_request_id_must_be_a_uuid(
    store: Store, organisation: Organisation, request_id: str
) -> None:
    with pytest.raises(InvalidConversation) as raised:
        create(store, NewConversation(**{**NEW.__dict__, "request_id": request_id}), CALLER)
    assert [v.field for v in raised.value.violations] == ["request_id"]


def test_concurrent_retries_store_one_conversation(
    store: Store, organisation: Organisation
) -> None:
    request_ids = [str(uuid.uuid4()) for _ in range(5)]
    barrier = threading.Barrier(8, timeout=30)

    def retry(request_id: str) -> Conversation:
        barrier.wait()
        return create(store, NewConversation(**{**NEW.__dict__, "request_id": request_id}), CALLER)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for request_id in request_ids:
            barrier.reset()
            results = list(pool.map(retry, [request_id] * 8, timeout=60))
            assert len({r.id for r in results}) == 1
    assert store.count_conversations() == len(request_ids)


def test_twins_written_in_one_batch_store_once(
    store: Store, organisation: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(store, NEW, CALLER)  # D10 is known from now on
    batches = BatchesBegun(monkeypatch)
    twin = NewConversation(**{**NEW.__dict__, "request_id": str(uuid.uuid4())})
    plain = NewConversation(trkref="D10", first_name="Bo", question="Q?", sku="S2")
    with write_lock_held(store) as release, ThreadPoolExecutor(8) as pool:
        # The writer takes the first plain create and waits on the lock with it;
        # the rest queue behind it and are written together: the twins in one batch.
        futures = [pool.submit(create, store, plain, CALLER)]
        batches.wait(1)
        futures += [pool.submit(create, store, plain, CALLER)]
        futures += [pool.submit(create, store, twin, CALLER) for _ in range(4)]
        wait_until_queued(store, 5)
        release()
        plains = [f.result(10) for f in futures[:2]]
        twins = [f.result(10) for f in futures[2:]]

    assert len({t.id for t in twins}) == 1
    assert len({p.id for p in plains}) == 2
    assert store.count_conversations() == 4
