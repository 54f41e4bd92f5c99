"""Reports at once on PostgreSQL, from stores of their own (one connection each, as
replicas have): the threshold is crossed exactly once, and an approve racing the report
that crosses it leaves a status its decision log explains."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.support import CALLER, ORGANISATION, add_organisation_with_key, insert
from server.service.decisions import Decision
from server.service.domain import PUBLISHED, NewConversation, PendingCreate
from server.service.reports import ItemReport, ReportOutcome
from server.storage.store import Store
from tests.integration.conftest import postgres_stores

AT = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
STORES = 6


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[Store]]:
    with postgres_stores(postgres_url, STORES) as opened:
        yield opened


def published(store: Store) -> int:
    new = NewConversation("D10", "Ann", "Fits?", "S1")
    return insert(store, PendingCreate(new, ORGANISATION, AT, CALLER.key_id)).conversation.id


def report(store: Store, conversation: int, reporter: str) -> ReportOutcome | None:
    asked = ItemReport("conversation", conversation, "D10", "spam", CALLER.key_id, AT, reporter)
    return asyncio.run(store.moderation.report(asked))


def test_many_reporters_at_once_cross_the_threshold_once(stores: list[Store]) -> None:
    add_organisation_with_key(stores[0])
    conversation = published(stores[0])
    start = threading.Barrier(STORES, timeout=30)

    def send(n: int) -> list[ReportOutcome | None]:
        start.wait()
        return [report(stores[n], conversation, f"r{n}-{k}") for k in range(4)]

    with ThreadPoolExecutor(STORES) as pool:
        outcomes = [o for sent in pool.map(send, range(STORES)) for o in sent]
    held = [o for o in outcomes if o is not None and o.held]
    assert len(held) == 1
    # After the hold, a shopper's reports find nothing; before it, each one counted.
    assert all(o is None or o.counted for o in outcomes)
    log = asyncio.run(stores[0].moderation.decision_page("D10", None, 10)).decisions
    assert [(d.from_status, d.decision.reason) for d in log] == [(PUBLISHED, "reported")]


def race(stores: list[Store], conversation: int) -> None:
    """The report that reaches the threshold and an approve, at once, on two stores."""
    start = threading.Barrier(2, timeout=30)
    approve = Decision("D10", "conversation", conversation, PUBLISHED, "moderator", AT)

    def send(n: int) -> object:
        start.wait()
        if n == 0:
            return report(stores[1], conversation, "c")
        return asyncio.run(stores[2].moderation.decide(approve))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, range(2)))


def test_an_approve_racing_the_crossing_report_is_explained_by_the_log(
    stores: list[Store],
) -> None:
    add_organisation_with_key(stores[0])
    for _ in range(5):
        conversation = published(stores[0])
        report(stores[0], conversation, "a")
        report(stores[0], conversation, "b")
        race(stores, conversation)
        log = asyncio.run(stores[0].moderation.decision_page("D10", None, 100)).decisions
        mine = [d for d in reversed(log) if d.decision.target_id == conversation]
        status = PUBLISHED
        for recorded in mine:
            assert recorded.from_status == status
            status = recorded.decision.to_status
        shown = asyncio.run(stores[0].read_conversation(conversation, 20, "D10"))
        assert (shown is not None) == (status == PUBLISHED)
        assert mine and mine[0].decision.reason == "reported"
