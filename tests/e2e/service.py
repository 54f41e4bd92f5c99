"""What the end-to-end tests ask of a running service: HTTP requests, error bodies, metrics
scrapes, grpcurl. The service's process itself is harness.service's."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.databases import empty_postgres
from harness.service import DEMO_AUTHORIZATION, DEMO_CREDENTIALS, ServiceProcess, free_port
from harness.support import basic_authorization, cli, create_key

__all__ = [
    "DEMO_AUTHORIZATION",
    "DEMO_CREDENTIALS",
    "GRPCURL",
    "HttpResponse",
    "ServiceProcess",
    "free_port",
]

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    """One HTTP/1.1 request; error statuses are returned, not raised."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpResponse(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, _lower(error.headers), error.read())


# gRPC codes (google.rpc.Code) by the HTTP status a REST caller sees them as (docs/api.md).
GRPC_CODE_OF_STATUS = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    408: 8,
    409: 6,
    413: 8,
    415: 3,
    429: 8,
    431: 8,
    503: 14,
}


def assert_rpc_status(response: HttpResponse, status: int, message: str | None = None) -> Any:
    """An error answer as docs/api.md shows one: the HTTP status, and a google.rpc.Status
    JSON body with its gRPC code, a message (`message` when given) and a details list."""
    assert response.status == status, (response.status, response.body[:500])
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == GRPC_CODE_OF_STATUS[status], body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert isinstance(body["details"], list), body
    if message is not None:
        assert body["message"] == message, body
    return body


def scrape(address: str | int) -> dict[str, float]:
    """The samples of the metrics endpoint at HOST:PORT or a port: `name{labels}` -> value,
    the labels sorted by name."""
    host_port = address if ":" in str(address) else f"127.0.0.1:{address}"
    response = http("GET", f"http://{host_port}/metrics")
    assert response.status == 200, response
    return {
        name + _labels(labels): value
        for family in text_string_to_metric_families(response.body.decode())
        for name, labels, value, *_ in family.samples
    }


def _labels(labels: dict[str, str]) -> str:
    """Labels as the exposition format writes them, in its order (sorted by name)."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def call(
    service: ServiceProcess,
    method: str,
    path: str,
    body: Any = None,
    authorization: str = DEMO_AUTHORIZATION,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """One REST request to the service: a JSON body (text as it is, anything else encoded)
    and the demo key unless `authorization` says otherwise ("" for none)."""
    sent = {"authorization": authorization} if authorization else {}
    if body is not None:
        sent["content-type"] = "application/json"
    sent.update(headers or {})
    data = body if isinstance(body, str | bytes | None) else json.dumps(body)
    return http(method, service.base_url + path, data, sent)


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def empty_database(request: pytest.FixtureRequest, workdir: Path) -> str:
    """The URL of an empty database of the kind `request.param` names: a fresh SQLite file
    in `workdir`, or the test run's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{workdir}/conversations.db"
    url = str(request.getfixturevalue("postgres_url"))
    empty_postgres(url)
    return url


def grpcurl(
    address: str, *args: str, data: str | None = None, headers: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """grpcurl ADDRESS ARGS... in plaintext, with a JSON body and headers when given."""
    flags = ["-plaintext", *(["-d", data] if data is not None else [])]
    flags += [arg for header in headers for arg in ("-H", header)]
    return subprocess.run(
        [GRPCURL, *flags, address, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


# The product the conversations of ask() are about.
ASKED_SKU = "ASKED1"


def ask(
    service: ServiceProcess,
    question: str,
    authorization: str = DEMO_AUTHORIZATION,
    trkref: str = "D10",
) -> dict[str, Any]:
    """A conversation about ASKED_SKU created over REST: its JSON."""
    body = {"first_name": "A shopper", "question": question, "sku": ASKED_SKU}
    created = call(service, "POST", f"/v4/organisations/{trkref}/conversations", body,
                   authorization=authorization)  # fmt: skip
    assert created.status == 200, created.body
    return dict(created.json())


class RivalKeys:
    """A service's embedded database with another organisation, `rival` ("Rival", en-GB,
    added with `options`), and a moderator's key of D10: `moderator` (its authorization),
    `moderator_id`, `moderator_secret`. A test module adds the keys it needs."""

    def __init__(self, service: ServiceProcess, rival: str, *options: str) -> None:
        self.database = f"sqlite:///{service.workdir}/var/conversations.db"
        added = cli(self.database, "organisations", "add", rival, "--name", "Rival",
                    "--locale", "en-GB", *options)  # fmt: skip
        assert added.returncode == 0, added.stderr
        self.moderator_id, self.moderator_secret = create_key(self.database, "D10",
                                                              role="moderator")  # fmt: skip
        self.moderator = basic_authorization(self.moderator_id, self.moderator_secret)
