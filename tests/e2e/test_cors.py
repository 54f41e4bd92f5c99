"""CORS (--cors-origin): a page on an allowed origin calls the REST API from headless chromium
with the API key; a page on another origin cannot read the answer. Without the option, no
Access-Control-* header at all."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.browser import chromium
from tests.e2e.service import ServiceProcess, free_port, http
from tests.e2e.test_rest import CONVERSATIONS, DEMO, SEED_BODY

PAGE = "<!doctype html><title>A retailer's product page</title><p>Questions and answers</p>"
# The page's call: its status, the body and an exposed header as the page reads them, or the
# error fetch() raises when the browser keeps the answer from it.
FETCH = """async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    return {status: response.status, body: await response.json(),
            requestId: response.headers.get("x-request-id")};
  } catch (error) {
    return {error: String(error)};
  }
}"""
PREFLIGHT = {"access-control-request-method": "POST"}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests for the page are not logged."""


class PageServer:
    """A second web server, on 127.0.0.1 and a port of its own: another origin."""

    def __init__(self, root: Path) -> None:
        (root / "index.html").write_text(PAGE)
        handler = partial(QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def shops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PageServer, PageServer]]:
    """Two retailers' sites: the first is allowed to call the API, the second is not."""
    with (
        PageServer(tmp_path_factory.mktemp("allowed")) as allowed,
        PageServer(tmp_path_factory.mktemp("other")) as other,
    ):
        yield allowed, other


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, shops: tuple[PageServer, PageServer]
) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("cors")
    args = ["--cors-origin", shops[0].origin, "--cors-origin", "https://shop.example"]
    with ServiceProcess(workdir, args, rest=True, demo=True) as service:
        yield service


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page()


def call_from(page: Page, origin: str, url: str, init: dict[str, Any]) -> dict[str, Any]:
    """fetch(url, init) from a page loaded from `origin`."""
    page.goto(origin + "/index.html")
    answer: dict[str, Any] = page.evaluate(FETCH, [url, init])
    return answer


def test_a_page_on_an_allowed_origin_reads_the_answer(
    service: ServiceProcess, shops: tuple[PageServer, PageServer], browser_page: Page
) -> None:
    url = service.base_url + CONVERSATIONS
    create = {
        "method": "POST",
        "headers": {
            "Authorization": DEMO,
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
        "body": json.dumps({**SEED_BODY, "question": "Asked from a shop's page?"}),
    }

    created = call_from(browser_page, shops[0].origin, url, create)
    listed = call_from(
        browser_page,
        shops[0].origin,
        url + "?sku=" + SEED_BODY["sku"],
        {"headers": {"Authorization": DEMO}},
    )

    assert created["status"] == 200, created
    assert created["body"]["question"] == "Asked from a shop's page?"
    assert created["requestId"]  # an exposed header
    assert listed["status"] == 200, listed
    assert created["body"]["id"] in [c["id"] for c in listed["body"]["conversations"]]


def test_a_page_on_another_origin_cannot_read_the_answer(
    service: ServiceProcess, shops: tuple[PageServer, PageServer], browser_page: Page
) -> None:
    url = service.base_url + CONVERSATIONS + "?sku=" + SEED_BODY["sku"]

    answer = call_from(browser_page, shops[1].origin, url, {"headers": {"Authorization": DEMO}})

    assert answer == {"error": "TypeError: Failed to fetch"}


def test_a_preflight_from_an_allowed_origin_is_answered(
    service: ServiceProcess, shops: tuple[PageServer, PageServer]
) -> None:
    asking = {
        "origin": shops[0].origin,
        **PREFLIGHT,
        "access-control-request-headers": "authorization, idempotency-key, content-type",
    }

    response = http("OPTIONS", service.base_url + CONVERSATIONS, headers=asking)

    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == shops[0].origin
    assert response.headers["access-control-allow-methods"] == "GET, POST, HEAD, DELETE"
    allowed = response.headers["access-control-allow-headers"].split(", ")
    assert allowed == [
        "authorization",
        "idempotency-key",
        "content-type",
        "if-none-match",
        "x-request-id",
    ]
    exposed = response.headers["access-control-expose-headers"].split(", ")
    assert exposed == ["etag", "retry-after", "x-request-id", "www-authenticate"]
    assert int(response.headers["access-control-max-age"]) > 0


def test_a_call_from_an_allowed_origin_carries_the_headers_for_it(
    service: ServiceProcess,
) -> None:
    headers = {"origin": "https://shop.example", "authorization": DEMO}

    response = http("GET", service.base_url + CONVERSATIONS, headers=headers)

    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-request-id" in response.headers["access-control-expose-headers"]
    assert "origin" in response.headers["vary"].lower()  # a cache keeps one answer per origin


@pytest.mark.parametrize("origin", ["https://elsewhere.example", "https://shop.example.evil"])
def test_another_origin_gets_no_cors_headers(service: ServiceProcess, origin: str) -> None:
    preflight = http(
        "OPTIONS", service.base_url + CONVERSATIONS, headers={"origin": origin, **PREFLIGHT}
    )
    call = http(
        "GET", service.base_url + CONVERSATIONS, headers={"origin": origin, "authorization": DEMO}
    )

    assert not [h for h in preflight.headers if h.startswith("access-control-")]
    assert call.status == 200
    assert not [h for h in call.headers if h.startswith("access-control-")]


def test_without_cors_origin_no_response_has_cors_headers(rest: ServiceProcess) -> None:
    origin = {"origin": "https://shop.example"}

    preflight = http("OPTIONS", rest.base_url + CONVERSATIONS, headers={**origin, **PREFLIGHT})
    call = http("GET", rest.base_url + CONVERSATIONS, headers={**origin, "authorization": DEMO})

    assert preflight.status == 404
    assert call.status == 200
    assert not [h for h in {**preflight.headers, **call.headers} if h.startswith("access-control-")]
