"""In-process servers on ephemeral ports, and credentials for them."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest

from server import api_keys
from server.api_keys import IssuedKey
from server.app import RunningServer, start_server
from server.config import Config
from server.domain import Organisation

Metadata = tuple[tuple[str, str], ...]


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


@pytest.fixture
def start() -> Iterator[Callable[..., RunningServer]]:
    """Start servers with Config overrides on 127.0.0.1:0; all stopped at the end."""
    started: list[RunningServer] = []

    def start_with(**overrides: object) -> RunningServer:
        defaults: dict[str, object] = {"grpc_address": "127.0.0.1:0", "workers": 4, "rest": False}
        server = start_server(Config(**{**defaults, **overrides}))  # type: ignore[arg-type]
        server.mark_serving()
        started.append(server)
        return server

    yield start_with
    for server in started:
        server.stop(grace=1)
