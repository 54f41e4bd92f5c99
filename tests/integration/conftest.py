"""Real databases (a SQLite file, the test run's PostgreSQL database) and in-process servers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from harness.databases import empty_postgres
from harness.support import Metadata, add_organisation_with_key, basic
from server.app import RunningServer, start_server
from server.config import Config
from server.service import api_keys
from server.service.api_keys import IssuedKey
from server.service.domain import Organisation
from server.service.ports import Storage
from server.storage.store import Store
from tests.unit.fakes import FakeStorage

T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    """The kind of database `store` opens; parametrize it indirectly to pick one."""
    return str(request.param)


def open_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, *, read_cache_mib: int = 32
) -> Store:
    """An open, migrated, empty Store of this kind: a new SQLite file, or the test run's
    PostgreSQL database emptied."""
    if kind == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path}/conversations.db", read_cache_mib=read_cache_mib)
        store.migrate()
        return store
    url = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    return Store.open(url, read_cache_mib=read_cache_mib)


@contextlib.contextmanager
def postgres_stores(url: str, count: int) -> Iterator[list[Store]]:
    """`count` Stores on the emptied PostgreSQL database, each with connections of its own,
    as replicas have; closed after."""
    empty_postgres(url)
    opened = [Store.open(url) for _ in range(count)]
    try:
        yield opened
    finally:
        for store in opened:
            store.close()


@pytest.fixture
def store(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """An open, migrated, empty Store of the `database` kind; closed after."""
    opened = open_store(database, tmp_path, request)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=["fake", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """The unit tests' FakeStorage, or an open, migrated, empty Store (storage contracts)."""
    if request.param == "fake":
        yield FakeStorage()
        return
    store = open_store(request.param, tmp_path, request)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def organisation(store: Store) -> Organisation:
    """The demo retailer D10 (en-GB), stored, with CALLER's key."""
    return add_organisation_with_key(store)


@pytest.fixture
def issued_key(store: Store, organisation: Organisation) -> IssuedKey:
    """A key that reaches D10."""
    return api_keys.create_key(store, [organisation.trkref])


@pytest.fixture
def auth(issued_key: IssuedKey) -> Metadata:
    return basic(issued_key.key_id, issued_key.secret)


class OnLoop(Protocol):
    """Runs a coroutine on the servers' event loop and waits for its result."""

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T: ...


@pytest.fixture(scope="session")
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as the service's runs in its main thread.

    One for the whole test run: grpc.aio objects belong to the loop that made them.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="event-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def on_loop(event_loop_thread: asyncio.AbstractEventLoop) -> OnLoop:
    """Run a coroutine on the servers' event loop and wait for its result."""

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, event_loop_thread).result(30)

    return run


@pytest.fixture
def start(store: Store, on_loop: OnLoop) -> Iterator[Callable[..., RunningServer]]:
    """Start servers on `store` with Config overrides on 127.0.0.1:0; all stopped at the end."""
    started: list[RunningServer] = []

    def start_with(**overrides: object) -> RunningServer:
        defaults: dict[str, object] = {"grpc_address": "127.0.0.1:0", "workers": 4, "rest": False}
        config = Config(**{**defaults, **overrides})  # type: ignore[arg-type]
        server = on_loop(start_server(config, store))
        on_loop(server.mark_serving())
        started.append(server)
        return server

    yield start_with
    for server in started:
        on_loop(server.stop(grace=1))
