"""Compression on the REST port: gzip and brotli responses for clients that accept them, and
request bodies sent with Content-Encoding gzip or br; another encoding is 415."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import brotli
import pytest

from server.rest.envoy_config import SWAGGER_UI
from tests.e2e.service import ServiceProcess, assert_rpc_status, http
from tests.e2e.test_rest import CONVERSATIONS, DEMO, JSON, SEED_BODY

DECODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress, "br": brotli.decompress}
# Envoy leaves smaller responses as they are.
MIN_COMPRESSED_BYTES = 1024


@pytest.fixture(scope="module")
def page_url(rest: ServiceProcess) -> str:
    """A List page of 30 conversations, well over the minimum size."""
    for number in range(30):
        body = {**SEED_BODY, "sku": "ZIPPED", "question": f"Does size {number} fit?"}
        assert http("POST", rest.base_url + CONVERSATIONS, json.dumps(body), JSON).status == 200
    return rest.base_url + CONVERSATIONS + "?sku=ZIPPED&page_size=30"


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_list_page_is_compressed_for_a_client_that_accepts_it(
    page_url: str, encoding: str
) -> None:
    plain = http("GET", page_url, headers={"authorization": DEMO})
    compressed = http("GET", page_url, headers={"authorization": DEMO, "accept-encoding": encoding})

    assert "content-encoding" not in plain.headers
    assert len(plain.body) > MIN_COMPRESSED_BYTES
    assert compressed.status == 200
    assert compressed.headers["content-encoding"] == encoding
    assert compressed.headers["content-type"] == "application/json"
    assert "accept-encoding" in compressed.headers["vary"].lower()
    assert len(compressed.body) < len(plain.body)
    assert json.loads(DECODERS[encoding](compressed.body)) == plain.json()
    assert len(plain.json()["conversations"]) == 30


def test_the_preferred_encoding_of_the_client_is_chosen(page_url: str) -> None:
    preferring_br = {"authorization": DEMO, "accept-encoding": "gzip;q=0.5, br;q=1"}

    response = http("GET", page_url, headers=preferring_br)

    assert response.headers["content-encoding"] == "br"


def test_the_explorers_script_is_compressed(rest: ServiceProcess) -> None:
    url = rest.base_url + "/docs/swagger-ui-bundle.js"

    response = http("GET", url, headers={"accept-encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(response.body) == (SWAGGER_UI / "swagger-ui-bundle.js").read_bytes()


def test_a_small_response_is_not_compressed(rest: ServiceProcess) -> None:
    response = http("GET", rest.base_url + "/healthz", headers={"accept-encoding": "gzip, br"})

    assert "content-encoding" not in response.headers
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_compressed_request_body_is_decompressed(rest: ServiceProcess, encoding: str) -> None:
    body = {**SEED_BODY, "question": f"Sent as {encoding}?"}
    encode = gzip.compress if encoding == "gzip" else brotli.compress

    response = http(
        "POST",
        rest.base_url + CONVERSATIONS,
        encode(json.dumps(body).encode()),
        {**JSON, "content-encoding": encoding},
    )

    assert response.status == 200, response.body
    assert response.json()["question"] == f"Sent as {encoding}?"


def test_another_request_encoding_is_415(rest: ServiceProcess) -> None:
    response = http(
        "POST",
        rest.base_url + CONVERSATIONS,
        gzip.compress(json.dumps(SEED_BODY).encode()),
        {**JSON, "content-encoding": "deflate"},
    )

    assert_rpc_status(
        response, 415, "request Content-Encoding is not supported: send gzip, br or identity"
    )


def test_a_body_that_decompresses_over_the_limit_is_413(rest: ServiceProcess) -> None:
    # A few KiB of gzip that the buffer filter sees decompressed, over --max-request-bytes.
    bomb = gzip.compress(json.dumps({**SEED_BODY, "question": "x" * 5_000_000}).encode())

    response = http(
        "POST", rest.base_url + CONVERSATIONS, bomb, {**JSON, "content-encoding": "gzip"}
    )

    assert len(bomb) < 64 * 1024
    assert_rpc_status(response, 413)
