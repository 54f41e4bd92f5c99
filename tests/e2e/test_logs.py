"""The log as a pipeline reads it: every line `serve` and its Envoy write, from start to stop,
is a JSON object with an RFC 3339 UTC time, in time order; Envoy's own health checks are
not in it; what a client sends as its request id is kept only when short and plain, and
never reaches a line as it was sent."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.databases import empty_postgres
from harness.support import basic
from tests.e2e.raw_requests import grpc_call, http1_get
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, call
from tests.e2e.test_rest import CONVERSATIONS, SEED_BODY

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Request ids a hostile client sends, and what of each must never reach the log.
HOSTILE = {
    "newline": ("x\nCRITICAL server.app FAKE: admin key rotated", "admin key rotated"),
    "escape": ("\x1b[2J\x1b]0;owned\x07x", "\x1b"),
    "long": ("L" * 8000, "L" * 65),
    "quotes": ('a b "c" trace_id=deadbeefdeadbeefdeadbeefdeadbeef', "deadbeef" * 4),
}
# HTTP/1.1 cannot carry a newline in a header value.
HOSTILE_OVER_REST = ("escape", "long", "quotes")
PLAIN = "client-42.retry:1"
A_UUID = "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"  # which Envoy once rewrote (its trace reason)


@dataclass
class Run:
    """What a run of `serve` logged, from start to stop, and what its calls saw."""

    log: str = ""
    code: int | None = None
    grpc_ids: dict[str, str] = field(default_factory=dict)  # request_id logged per hostile id
    # The status, request id echoed and request_id logged (None: refused by Envoy) per id.
    rest_ids: dict[str, tuple[int, str | None, str | None]] = field(default_factory=dict)
    plain_grpc: str = ""
    plain_rest: tuple[str | None, str] = (None, "")
    uuid_rest: tuple[str | None, str] = (None, "")
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, code) logged
    health_checks: int = 0  # Envoy's

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    service = ServiceProcess(tmp_path_factory.mktemp("logs"), rest=True, demo=True)
    result = Run()
    try:
        service.wait_until_serving()
        service.wait_for_log("REST serving on")
        calls(service, result)
        hostile_calls(service, result)
        wait_for_health_checks(service, 1)
        result.health_checks = envoy_health_checks(service)
    finally:
        result.code = service.stop()
        result.log = service.log()
    yield result


def next_rpc_line(service: ServiceProcess, since: int) -> tuple[dict[str, Any], int]:
    """The first access line of a call after character `since` of the log, and where it ends."""
    found = service.wait_for_log(r'[^\n]*"event": "rpc"[^\n]*\n', since=since)
    return json.loads(found.group()), since + found.end()


def calls(service: ServiceProcess, result: Run) -> None:
    """Create, get, list and a missing conversation over gRPC and REST, an unknown REST path,
    and a plain request id over each."""
    since = len(service.log())
    with grpc.insecure_channel(service.address) as channel:
        stub: Any = pb_grpc.ConversationServiceStub(channel)
        credentials = basic(*DEMO_CREDENTIALS)
        created = stub.CreateConversation(
            pb.CreateConversationRequest(trkref="D10", **SEED_BODY), metadata=credentials
        )
        stub.GetConversation(
            pb.GetConversationRequest(trkref="D10", id=created.id), metadata=credentials
        )
        stub.ListConversations(pb.ListConversationsRequest(trkref="D10"), metadata=credentials)
        with pytest.raises(grpc.RpcError):
            stub.GetConversation(
                pb.GetConversationRequest(trkref="D10", id=999_999), metadata=credentials
            )
        stub.ListConversations(
            pb.ListConversationsRequest(trkref="D10"),
            metadata=(*credentials, ("x-request-id", PLAIN)),
        )
    for method, path, body in (
        ("POST", CONVERSATIONS, SEED_BODY),
        ("GET", f"/v4/conversations/{created.id}?trkref=D10", None),
        ("GET", CONVERSATIONS, None),
        ("GET", "/v4/conversations/999999?trkref=D10", None),
    ):
        call(service, method, path, body)
    while len(result.calls) < 9:
        line, since = next_rpc_line(service, since)
        if line["method"] == HEALTH_CHECK:
            continue  # the last of those that waited for `serve` to be ready
        result.calls.append((line["method"].rsplit("/", 1)[-1], line["code"]))
        if line["request_id"] == PLAIN:
            result.plain_grpc = line["request_id"]
    response = call(service, "GET", CONVERSATIONS, headers={"x-request-id": PLAIN})
    line, since = next_rpc_line(service, since)
    result.plain_rest = (response.headers.get("x-request-id"), line["request_id"])
    response = call(service, "GET", CONVERSATIONS, headers={"x-request-id": A_UUID})
    line, since = next_rpc_line(service, since)
    result.uuid_rest = (response.headers.get("x-request-id"), line["request_id"])
    assert call(service, "GET", "/nope").status == 404
    service.wait_for_log('"event": "http_refused"', since=since)
    # Readiness probes: each asks gRPC health through Envoy, as Envoy's own check.
    assert [call(service, "GET", "/readyz").status for _ in range(3)] == [200, 200, 200]


def hostile_calls(service: ServiceProcess, result: Run) -> None:
    """Each hostile request id, over gRPC (HTTP/2 as written by hand) and over REST."""
    authorization = dict(basic(*DEMO_CREDENTIALS))["authorization"]
    for name, (request_id, _) in HOSTILE.items():
        since = len(service.log())
        grpc_call(service.address, HEALTH_CHECK, [("x-request-id", request_id)])
        line, _ = next_rpc_line(service, since)
        result.grpc_ids[name] = line["request_id"]
    assert service.http_address is not None
    for name in HOSTILE_OVER_REST:
        since = len(service.log())
        status, headers = http1_get(
            service.http_address,
            CONVERSATIONS,
            {"authorization": authorization, "x-request-id": HOSTILE[name][0]},
        )
        logged = next_rpc_line(service, since)[0]["request_id"] if status == 200 else None
        result.rest_ids[name] = (status, headers.get("x-request-id"), logged)


def envoy_admin(service: ServiceProcess) -> Path:
    """The unix socket of the admin interface of the service's Envoy, beside its configuration."""
    pid = service.wait_for_log(r"Envoy pid (\d+)").group(1)
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    config = Path(arguments[arguments.index(b"--config-path") + 1].decode())
    return config.parent / "admin.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(self._path))


def envoy_health_checks(service: ServiceProcess) -> int:
    """How many health checks the service's Envoy has sent its upstream (its admin's stats)."""
    connection = _UnixConnection(envoy_admin(service))
    try:
        connection.request("GET", "/stats?filter=conversations_grpc.health_check.attempt$")
        stats = connection.getresponse().read().decode()
    finally:
        connection.close()
    return int(stats.rpartition(":")[2].strip() or 0)


def wait_for_health_checks(service: ServiceProcess, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while envoy_health_checks(service) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def test_every_line_from_start_to_stop_is_a_json_object(run: Run) -> None:
    lines = run.lines()  # json.loads of each line

    assert run.code == 0
    assert all(isinstance(line, dict) for line in lines)
    assert all({"time", "level", "logger", "message", "pid"} <= set(line) for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"server.app", "conversation_service.access"} <= loggers
    assert any(logger.startswith("envoy.") for logger in loggers), loggers  # Envoy's own
    assert lines[-1]["message"] == "stopped"


def test_times_are_rfc3339_in_utc_and_never_go_back(run: Run) -> None:
    times = [line["time"] for line in run.lines()]

    assert all(RFC3339_UTC.fullmatch(time) for time in times)
    parsed = [datetime.fromisoformat(time) for time in times]
    assert all(moment.utcoffset() == timedelta(0) for moment in parsed)
    assert parsed == sorted(parsed)


def test_every_call_is_logged_with_its_code_over_grpc_and_rest(run: Run) -> None:
    expected = [
        ("CreateConversation", "OK"),
        ("GetConversation", "OK"),
        ("ListConversations", "OK"),
        ("GetConversation", "NOT_FOUND"),
    ]
    assert run.calls == [*expected, ("ListConversations", "OK"), *expected]  # gRPC, then REST
    refused = [line for line in run.lines() if line.get("event") == "http_refused"]
    assert (refused[0]["path"], refused[0]["status"]) == ("/nope", 404)


def test_the_health_checks_of_the_service_own_envoy_are_not_logged(run: Run) -> None:
    checks = [line["request_id"] for line in run.lines() if line.get("method") == HEALTH_CHECK]

    assert run.health_checks >= 1  # Envoy checks as it starts
    # Only the test's own: those that waited for `serve`, and those of the hostile ids.
    assert set(checks) - {"wait-until-serving"} == set(run.grpc_ids.values())


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_request_id_over_grpc_is_replaced_and_never_logged(run: Run, name: str) -> None:
    sent, mark = HOSTILE[name]

    assert is_uuid(run.grpc_ids[name])
    assert sent not in run.log and mark not in run.log


@pytest.mark.parametrize("name", HOSTILE_OVER_REST)
def test_a_hostile_request_id_over_rest_is_replaced_echoed_and_logged_as_replaced(
    run: Run, name: str
) -> None:
    sent, mark = HOSTILE[name]
    status, echoed, logged = run.rest_ids[name]

    if name == "escape":  # Envoy's HTTP/1.1 codec refuses a control character in a header
        assert (status, logged) == (400, None)
        assert echoed is None or is_uuid(echoed)
    else:
        assert status == 200
        assert echoed is not None and is_uuid(echoed)  # not the 8,000 characters sent
        assert logged == echoed
    assert sent not in run.log and mark not in run.log


def test_a_plain_client_request_id_is_the_one_logged(run: Run) -> None:
    assert run.plain_grpc == PLAIN
    assert run.plain_rest == (PLAIN, PLAIN)  # sent back, and logged
    assert run.uuid_rest == (A_UUID, A_UUID)


def test_log_format_text_writes_lines_for_a_terminal(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, rest=True, demo=True, CONVERSATION_SERVICE_LOG_FORMAT="text")
    try:
        service.wait_until_serving()
        service.wait_for_log("REST serving on")
        assert call(service, "GET", CONVERSATIONS).status == 200
        service.wait_for_log("INFO conversation_service.access ")
    finally:
        assert service.stop() == 0
    lines = service.log().splitlines()

    text = re.compile(rf"{RFC3339_UTC.pattern} [A-Za-z]+ [\w.]+(\[\d+\])? \S.*")
    assert all(text.fullmatch(line) for line in lines), lines
    assert any(" envoy." in line for line in lines)  # Envoy's, alike
    assert not any(line.startswith("{") for line in lines)


def test_log_level_warning_leaves_out_info_lines(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, ["--log-level", "warning"], rest=True, demo=True)
    try:
        service.wait_until_serving()  # Envoy is ready once health says SERVING
        assert call(service, "GET", CONVERSATIONS).status == 200
        assert call(service, "GET", "/nope").status == 404
    finally:
        assert service.stop() == 0
    lines = [json.loads(line) for line in service.log().splitlines()]

    assert lines, "Envoy's warning as it stops"
    assert {line["level"] for line in lines} <= {"warning", "error", "critical"}


def test_every_line_is_a_json_object_on_postgresql_too(tmp_path: Path, postgres_url: str) -> None:
    empty_postgres(postgres_url)
    args = ["--database-url", postgres_url, "--processes", "2"]
    service = ServiceProcess(tmp_path, args, rest=True, demo=True)
    try:
        service.wait_until_serving()
        assert call(service, "POST", CONVERSATIONS, SEED_BODY).status == 200
        assert call(service, "GET", CONVERSATIONS).status == 200
        service.wait_for_log('/ListConversations OK"')
    finally:
        assert service.stop() == 0
    lines = [json.loads(line) for line in service.log().splitlines()]

    assert {"time", "level", "logger", "message", "pid"} <= set.intersection(
        *(set(line) for line in lines)
    )
    assert all(RFC3339_UTC.fullmatch(line["time"]) for line in lines)
    assert any(line.get("event") == "rpc" for line in lines)
