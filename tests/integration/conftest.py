"""In-process servers on ephemeral ports, and credentials for them."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

import pytest

from server import api_keys
from server.api_keys import IssuedKey
from server.app import RunningServer, start_server
from server.config import Config
from server.domain import Organisation

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")


class OnLoop(Protocol):
    """Runs a coroutine on the servers' event loop and waits for its result."""

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T: ...


def basic(key_id: str, secret: str) -> Metadata:
    token = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


@pytest.fixture
def issued_key(organisation: Organisation) -> IssuedKey:
    """A key that reaches D10."""
    return api_keys.create_key([organisation.trkref])


@pytest.fixture
def auth(issued_key: IssuedKey) -> Metadata:
    return basic(issued_key.key_id, issued_key.secret)


@pytest.fixture(scope="session")
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as the service's runs in its main thread.

    One for the whole session: grpc.aio objects belong to the loop that made them.
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
def start(on_loop: OnLoop) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with Config overrides on 127.0.0.1:0; all stopped at the end."""
    started: list[RunningServer] = []

    def start_with(**overrides: object) -> RunningServer:
        defaults: dict[str, object] = {"grpc_address": "127.0.0.1:0", "workers": 4, "rest": False}
        server = on_loop(start_server(Config(**{**defaults, **overrides})))  # type: ignore[arg-type]
        on_loop(server.mark_serving())
        started.append(server)
        return server

    yield start_with
    for server in started:
        on_loop(server.stop(grace=1))
