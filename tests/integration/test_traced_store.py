"""With a tracer, each call's wait on the database is a span of its own, a child of the call's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness.support import CALLER, add_organisation_with_key
from harness.support import NEW_CONVERSATION as NEW
from server.service import conversations
from server.storage.store import Store


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exported: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider.get_tracer("test")


@pytest.fixture
def traced_store(tmp_path: Path, tracer: trace.Tracer) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path}/traced.db", tracer=tracer)
    store.migrate()
    add_organisation_with_key(store)
    yield store
    store.close()


async def create_in_a_call(store: Store, tracer: trace.Tracer, n: int) -> int:
    """A create inside a span standing for its call; returns that span's id."""
    with tracer.start_as_current_span(f"call {n}") as call:
        new = replace(NEW, question=f"Fits {n}?")
        await conversations.create_conversation(store, new, CALLER)
        return call.get_span_context().span_id


def test_each_create_of_a_shared_batch_has_its_own_span_under_its_call(
    traced_store: Store, tracer: trace.Tracer, exported: InMemorySpanExporter
) -> None:
    async def concurrently() -> list[int]:
        return await asyncio.gather(*(create_in_a_call(traced_store, tracer, n) for n in range(8)))

    calls = asyncio.run(concurrently())

    inserts = [s for s in exported.get_finished_spans() if s.name == "INSERT conversations"]
    assert sorted(s.parent.span_id for s in inserts if s.parent) == sorted(calls)
    assert {s.kind for s in inserts} == {trace.SpanKind.CLIENT}
    assert inserts[0].attributes == {
        "db.system.name": "sqlite",
        "db.operation.name": "INSERT",
        "db.collection.name": "conversations",
    }


def test_a_read_is_a_select_span(
    traced_store: Store, tracer: trace.Tracer, exported: InMemorySpanExporter
) -> None:
    asyncio.run(create_in_a_call(traced_store, tracer, 1))

    asyncio.run(traced_store.read_conversation(1, 20))

    assert [s.name for s in exported.get_finished_spans()][-1] == "SELECT conversations"


def test_without_a_tracer_nothing_is_wrapped(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/plain.db")
    try:
        waiting = asyncio.sleep(0)
        assert store._traced("SELECT conversations", waiting) is waiting
        asyncio.run(waiting)
    finally:
        store.close()
