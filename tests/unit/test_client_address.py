"""The address a failed authentication counts against: the peer, or behind the service's
own Envoy (a unix socket) the last x-forwarded-for entry, which Envoy appends."""

from __future__ import annotations

from typing import Any, cast

import pytest

from server.api.auth import client_address
from server.api.errors import Context


class FakeContext:
    def __init__(self, peer: str, *metadata: tuple[str, str]) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> Any:
        return self._metadata


def address(peer: str, *metadata: tuple[str, str]) -> str:
    return client_address(cast(Context, FakeContext(peer, *metadata)))


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:192.0.2.7:51234", "192.0.2.7"),
        ("ipv6:[2001:db8::7]:51234", "2001:db8::7"),
    ],
)
def test_on_the_grpc_port_the_peer_decides_whatever_the_client_forwards(
    peer: str, expected: str
) -> None:
    assert address(peer, ("x-forwarded-for", "10.0.0.1")) == expected
    assert address(peer, ("x-envoy-external-address", "10.0.0.1")) == expected


def test_through_the_service_s_envoy_the_last_forwarded_entry_decides() -> None:
    forwarded = ("x-forwarded-for", "10.0.0.1, 203.0.113.9")
    assert address("unix:/tmp/conversation-service-x/grpc.sock", forwarded) == "203.0.113.9"
    assert address("unix:", ("x-forwarded-for", "203.0.113.9")) == "203.0.113.9"
    assert address("unix:") == "unix:"
