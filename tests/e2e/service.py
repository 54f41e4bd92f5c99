"""Run the real `conversation-service` as a child process, bound to 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import empty_postgres
from tests.postgres_cluster import free_port
from tests.support import SERVICE, basic_authorization, cli, create_key

__all__ = [
    "DEMO_AUTHORIZATION",
    "DEMO_CREDENTIALS",
    "GRPCURL",
    "HttpResponse",
    "ServiceProcess",
    "free_port",
]

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


# The request id of the health checks that wait for `serve` to be ready: their access lines.
WAITING = (("x-request-id", "wait-until-serving"),)

# The key `serve --demo` creates with the demo organisation on a database without any.
DEMO_CREDENTIALS = ("demo", "demo-secret")
DEMO_AUTHORIZATION = basic_authorization(*DEMO_CREDENTIALS)


class ServiceProcess:
    """`conversation-service serve` (the venv's, or `command`) on a free port; stopped by its
    PID, never by name."""

    def __init__(
        self,
        workdir: Path,
        extra_args: Sequence[str] = (),
        *,
        rest: bool = False,
        demo: bool = False,
        command: str = SERVICE,
        **env: str,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.http_address = f"127.0.0.1:{free_port()}" if rest else None
        rest_args = ["--http-address", self.http_address] if self.http_address else ["--no-rest"]
        rest_args += ["--demo"] if demo else []
        self.log_path = workdir / f"serve-{self.port}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [command, "serve", "--grpc-address", self.address, *rest_args, *extra_args],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"serve exited early:\n{self.log()}")
                try:
                    response = health.Check(
                        health_pb2.HealthCheckRequest(), timeout=1, metadata=WAITING
                    )
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"serve did not become healthy in {timeout}s:\n{self.log()}")

    @property
    def base_url(self) -> str:
        assert self.http_address, "started without REST"
        return f"http://{self.http_address}"

    def log(self, since: int = 0) -> str:
        """The log, from character `since` on (a length of an earlier log())."""
        return self.log_path.read_text()[since:]

    def wait_for_log(self, pattern: str, *, since: int = 0, timeout: float = 30) -> re.Match[str]:
        """The first match of a regular expression in the log from `since` on, once lines
        reach it (the access log's in batches); fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log(since))
            if found:
                return found
            time.sleep(0.1)  # polling the log file
        raise AssertionError(f"{pattern!r} not logged in {timeout} s:\n{self.log(since)}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit code; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        try:
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
