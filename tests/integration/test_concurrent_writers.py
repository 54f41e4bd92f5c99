"""Creates, answers and votes at once on PostgreSQL, from stores of their own (one write
connection each, as replicas have), over a few products that each batch crosses in its
own order: every writer locks in one order (migration 0015), so none deadlocks, and
every count is exact."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from harness.support import CALLER, add_organisation_with_key, answer, create
from server.service import answers, conversations, votes
from server.service.domain import NewAnswer, NewConversation
from server.storage.store import Store
from tests.integration.conftest import postgres_stores
from tests.integration.test_moderation import assert_counts_exact

STORES = 4
PRODUCTS = ("P1", "P2", "P3")
ROUNDS = 3
# Each store's calls a round, all at once: creates, answers and votes.
CREATES, ANSWERS, VOTES = 12, 6, 30
VOTERS = ("v1", "v2", "v3")


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[Store]]:
    with postgres_stores(postgres_url, STORES) as opened:
        yield opened


def deadlocks(store: Store) -> int:
    with store.reading():
        cursor = store.db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(cursor.fetchone()[0])


def calls(
    store: Store, rng: random.Random, targets: list[tuple[str, int]], conversation_ids: list[int]
) -> list[Coroutine[Any, Any, object]]:
    """A round of one store's calls, in an order of its own; every other vote by one of
    VOTERS, who count once per target whichever store they vote through."""
    made: list[Coroutine[Any, Any, object]] = []
    for n in range(CREATES):
        new = NewConversation("D10", "Ann", f"Does it fit {n}?", rng.choice(PRODUCTS))
        made.append(conversations.create_conversation(store, new, CALLER))
    for _ in range(ANSWERS):
        new_answer = NewAnswer("D10", rng.choice(conversation_ids), "Yes.", "Bo")
        made.append(answers.create_answer(store, new_answer, CALLER))
    for n in range(VOTES):
        target, target_id = rng.choice(targets)
        voter = rng.choice(VOTERS) if n % 2 else ""
        voted = {"target": target, "target_id": target_id, "counter": "helpful", "voter_id": voter}
        made.append(votes.vote(store, CALLER, trkref="D10", **voted))  # type: ignore[arg-type]
    rng.shuffle(made)
    return made


async def rounds(
    store: Store,
    seed: int,
    start: threading.Barrier,
    targets: list[tuple[str, int]],
    conversation_ids: list[int],
) -> list[object]:
    """ROUNDS rounds of one store's calls, each round's all at once, begun with the other
    stores' rounds, on one event loop (and so one set of threads for its reads); each
    call's outcome or error."""
    rng = random.Random(seed)
    outcomes: list[object] = []
    for _ in range(ROUNDS):
        await asyncio.to_thread(start.wait)
        made = calls(store, rng, targets, conversation_ids)
        outcomes += await asyncio.gather(*made, return_exceptions=True)
    return outcomes


def test_crossing_writers_never_deadlock_and_count_exactly(stores: list[Store]) -> None:
    store = stores[0]
    add_organisation_with_key(store)
    conversation_ids = [
        create(store, NewConversation("D10", "Ann", "Fits?", sku), CALLER).id
        for sku in PRODUCTS * 2
    ]
    answer_ids = [
        answer(store, NewAnswer("D10", c, "Yes", "Bo"), CALLER).id for c in conversation_ids
    ]
    targets = [("conversation", c) for c in conversation_ids] + [("answer", a) for a in answer_ids]
    deadlocks_before = deadlocks(store)
    start = threading.Barrier(STORES, timeout=30)

    def run(n: int) -> list[object]:
        return asyncio.run(rounds(stores[n], n, start, targets, conversation_ids))

    with ThreadPoolExecutor(STORES) as pool:
        outcomes = [o for ran in pool.map(run, range(STORES)) for o in ran]

    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert deadlocks(store) == deadlocks_before
    assert_counts_exact(store)
    with store.reading():
        cursor = store.db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT (SELECT COUNT(*) FROM conversation), (SELECT COUNT(*) FROM answer),"
            " (SELECT SUM(helpful) FROM conversation) + (SELECT SUM(helpful) FROM answer),"
            " (SELECT COUNT(*) FROM vote)"
        )
        stored, answered, helpful, voters = (int(value) for value in cursor.fetchone())
    calls_made = STORES * ROUNDS
    assert stored == len(conversation_ids) + calls_made * CREATES
    assert answered == len(answer_ids) + calls_made * ANSWERS
    # Anonymous votes count each; a voter once per target, as the vote table records.
    assert helpful == calls_made * VOTES // 2 + voters
    assert 0 < voters <= len(VOTERS) * len(targets)
