"""Database faults under load: fail fast with UNAVAILABLE (503), NOT_SERVING, recover alone."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.load import (
    OK,
    Call,
    Load,
    assert_acknowledged_stored_once,
    grpc_create,
    rest_create,
)
from tests.e2e.service import ServiceProcess, free_port, http
from tests.postgres_cluster import PostgresCluster
from tests.support import basic_authorization, organisation_with_key, stored_questions

DATABASE_TIMEOUT = 2.0
# The bound on a failing call: the database timeout and a little more.
FAIL_FAST_BOUND = DATABASE_TIMEOUT + 1.5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    server = PostgresCluster()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def wait_for_health(address: str, wanted: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        status = None
        while time.monotonic() < deadline:
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            if status == wanted:
                return
            time.sleep(0.1)
    raise TimeoutError(f"health stayed {status}, not {wanted}, for {timeout}s")


def ended(call: Call) -> float:
    return call.started + call.seconds


def assert_failed_fast(calls: list[Call], unavailable: set[str]) -> None:
    """Each call succeeded or failed as unavailable, and none took longer than the bound."""
    assert {call.outcome for call in calls} <= {OK, *unavailable}
    slowest = max(call.seconds for call in calls)
    failed = [call.seconds for call in calls if call.outcome != OK]
    print(
        f"{len(calls)} calls, {len(failed)} failed, slowest {slowest:.3f}s, "
        f"slowest failure {max(failed):.3f}s"
    )  # shown with pytest -s
    assert slowest <= FAIL_FAST_BOUND, f"a call took {slowest:.2f}s"


def test_postgres_stopped_under_load_fails_fast_and_recovers(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = own_postgres.url
    authorization = basic_authorization(*organisation_with_key(url))
    metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
    args = ["--database-url", url, "--metrics-address", metrics_url.split("/")[2]]
    service = ServiceProcess(tmp_path, args, rest=True)
    with (
        service,
        Load(
            [grpc_create(service.address, authorization)] * 3
            + [rest_create(service.base_url, authorization)]
        ) as load,
    ):
        load.wait_for_successes(30)
        own_postgres.stop()
        stopped_at = time.monotonic()
        wait_for_health(service.address, NOT_SERVING)
        time.sleep(DATABASE_TIMEOUT + 1)
        restarting_at = time.monotonic()
        own_postgres.start()
        wait_for_health(service.address, SERVING)
        load.wait_for_successes(30)
        calls = load.stop()
        scraped = http("GET", metrics_url).body.decode()
        exit_code = service.stop()

    assert_failed_fast(calls, unavailable={"UNAVAILABLE", "HTTP 503"})
    during = [c for c in calls if c.started > stopped_at + 0.5 and ended(c) < restarting_at]
    assert during and all(call.outcome != OK for call in during)
    assert {call.outcome for call in during} == {"UNAVAILABLE", "HTTP 503"}
    assert any(call.outcome == OK and call.started > restarting_at for call in calls)
    assert_acknowledged_stored_once(calls, stored_questions(url))
    assert exit_code == 0
    assert "database unavailable, reporting NOT_SERVING" in service.log()
    assert "database available again, reporting SERVING" in service.log()
    assert re.search(
        r'^conversation_service_database_errors_total\{error="\w+"\} [1-9]', scraped, re.M
    )
    assert re.search(
        r'^conversation_service_calls_total\{code="UNAVAILABLE",.*\} [1-9]', scraped, re.M
    )


HOLD_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_sqlite_locked_by_another_process_fails_fast_and_recovers(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path)
    database = tmp_path / "var" / "conversations.db"
    with service, Load([grpc_create(service.address)] * 3) as load:
        load.wait_for_successes(30)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(database)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            locked_at = time.monotonic()
            wait_for_health(service.address, NOT_SERVING)
            time.sleep(DATABASE_TIMEOUT + 1)
            releasing_at = time.monotonic()
        finally:
            holder.communicate(timeout=10)  # closing its stdin releases the lock
        wait_for_health(service.address, SERVING)
        load.wait_for_successes(30)
        calls = load.stop()

    assert_failed_fast(calls, unavailable={"UNAVAILABLE"})
    during = [c for c in calls if c.started > locked_at + 0.5 and ended(c) < releasing_at]
    assert during and {call.outcome for call in during} == {"UNAVAILABLE"}
    assert_acknowledged_stored_once(calls, stored_questions(f"sqlite:///{database}"))
