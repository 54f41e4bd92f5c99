"""Addresses as the options write them, parsed in one place."""

from __future__ import annotations

import pytest

from server.addresses import join_address, otlp_host_port, reachable_address, split_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("localhost:8080", ("localhost", 8080)),
        ("[::1]:6000", ("::1", 6000)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_an_address_splits_into_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["50051", "localhost", "host:port", ":80", ""])
def test_an_address_without_host_or_port_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        split_address(address)


def test_a_left_out_host_is_the_default_one() -> None:
    assert split_address("9464", default_host="127.0.0.1") == ("127.0.0.1", 9464)
    assert split_address("[::]:9464", default_host="127.0.0.1") == ("::", 9464)


def test_an_ipv6_host_is_joined_in_brackets() -> None:
    assert join_address("::1", 80) == "[::1]:80"
    assert join_address("10.0.0.1", 80) == "10.0.0.1:80"


@pytest.mark.parametrize(
    ("address", "reachable"),
    [
        ("0.0.0.0:6000", "127.0.0.1:6000"),
        ("[::]:6000", "[::1]:6000"),
        ("db.internal:6000", "db.internal:6000"),
        ("unix:/run/grpc.sock", "unix:/run/grpc.sock"),
    ],
)
def test_a_wildcard_host_is_reached_on_loopback(address: str, reachable: str) -> None:
    assert reachable_address(address) == reachable


def test_an_otlp_endpoint_is_plaintext_host_and_port() -> None:
    assert otlp_host_port("http://collector:4317/") == ("collector", 4317)
    assert otlp_host_port("collector:4317") == ("collector", 4317)
    with pytest.raises(ValueError, match="only plaintext"):
        otlp_host_port("https://collector:4317")
