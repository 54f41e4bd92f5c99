"""Database faults under load: fail fast with UNAVAILABLE (503), NOT_SERVING, recover alone."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.support import basic_authorization, organisation_with_key, stored_questions
from tests.e2e.load import (
    OK,
    Call,
    Load,
    assert_acknowledged_stored_once,
    grpc_create,
    rest_create,
)
from tests.e2e.service import ServiceProcess, assert_rpc_status, call, free_port, http
from tests.postgres_cluster import PostgresCluster

DATABASE_TIMEOUT = 2.0
# The clients' deadline: a call still waiting on the database past it ends
# DEADLINE_EXCEEDED (gRPC) or with a timeout (REST), an outcome that fails the test.
CLIENT_DEADLINE = 4 * DATABASE_TIMEOUT
# Failed calls each test waits for while the fault lasts, started after it began.
FAILURES_DURING = 5
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
    """Each call succeeded or failed as unavailable within the clients' deadline."""
    slowest = max(call.seconds for call in calls)
    failed = [call.seconds for call in calls if call.outcome != OK]
    print(
        f"{len(calls)} calls, {len(failed)} failed, slowest {slowest:.3f}s, "
        f"slowest failure {max(failed):.3f}s"
    )  # shown with pytest -s
    # A call that outlived CLIENT_DEADLINE ended with another outcome.
    assert {call.outcome for call in calls} <= {OK, *unavailable}, Counter(
        call.outcome for call in calls
    )
    assert failed


def test_postgres_stopped_under_load_fails_fast_and_recovers(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = own_postgres.url
    authorization = basic_authorization(*organisation_with_key(url))
    metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
    # One server process: its fault is logged once (each process logs its own).
    args = [
        "--database-url",
        url,
        "--processes",
        "1",
        "--metrics-address",
        metrics_url.split("/")[2],
    ]
    service = ServiceProcess(tmp_path, args, rest=True)
    with (
        service,
        Load(
            [grpc_create(service.address, authorization, CLIENT_DEADLINE)] * 3
            + [rest_create(service.base_url, authorization, CLIENT_DEADLINE)]
        ) as load,
    ):
        load.wait_for_successes(30)
        own_postgres.stop()
        stopped_at = time.monotonic()
        wait_for_health(service.address, NOT_SERVING)
        load.wait_for(FAILURES_DURING, {"UNAVAILABLE"}, started_after=stopped_at + 0.5)
        load.wait_for(FAILURES_DURING, {"HTTP 503"}, started_after=stopped_at + 0.5)
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
    log = fault_log(service)
    faults = [line for line in log if "database unavailable" in line]
    assert len(faults) == 1 and "(connection lost)" in faults[0], log
    assert len([line for line in log if "database available again" in line]) == 1
    assert re.search(
        r'^conversation_service_database_errors_total\{error="\w+"\} [1-9]', scraped, re.M
    )
    assert re.search(
        r'^grpc_server_handled_total\{grpc_code="UNAVAILABLE",.*\} [1-9]', scraped, re.M
    )


HOLD_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


CREATE_PATH = "/v4/organisations/D10/conversations"


def test_sqlite_locked_by_another_process_fails_fast_and_recovers(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, rest=True, demo=True)
    database = tmp_path / "var" / "conversations.db"
    with service, Load([grpc_create(service.address, timeout=CLIENT_DEADLINE)] * 3) as load:
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
            load.wait_for(FAILURES_DURING, {"UNAVAILABLE"}, started_after=locked_at + 0.5)
            over_rest = call(
                service, "POST", CREATE_PATH, {"first_name": "R", "question": "q?", "sku": "S"}
            )
            releasing_at = time.monotonic()
        finally:
            holder.communicate(timeout=10)  # closing its stdin releases the lock
        wait_for_health(service.address, SERVING)
        load.wait_for_successes(30)
        calls = load.stop()

    assert_failed_fast(calls, unavailable={"UNAVAILABLE"})
    during = [c for c in calls if c.started > locked_at + 0.5 and ended(c) < releasing_at]
    assert during and {call.outcome for call in during} == {"UNAVAILABLE"}
    # REST says when to retry as gRPC's RetryInfo does.
    details = assert_rpc_status(over_rest, 503)["details"]
    assert over_rest.headers["retry-after"] == "1"
    assert details == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "1s"}]
    assert_acknowledged_stored_once(calls, stored_questions(f"sqlite:///{database}"))


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tmpfs of its own, 8 MiB, that a test can fill or make read-only."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def fault_log(service: ServiceProcess) -> list[str]:
    """The service's log lines other than the access log's."""
    lines = service.log().splitlines()
    return [line for line in lines if "conversation_service.access" not in line]


def fill(directory: Path) -> Path:
    """Write zeros to the file `filler` in the directory until not one more byte fits,
    whatever else wrote there before: the last write refused is of a single byte.
    Unbuffered, so a short write leaves nothing waiting to be flushed."""
    filler = directory / "filler"
    with filler.open("ab", buffering=0) as out:
        size = 1 << 20
        while size:
            try:
                out.write(bytes(size))
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                size //= 2
    return filler


def keep_full_until_not_serving(directory: Path, address: str, timeout: float = 20) -> Path:
    """Fill the directory's file system, and fill it again whatever the service frees
    (a journal truncated, a transaction rolled back), until health says NOT_SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            filler = fill(directory)
            if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == NOT_SERVING:
                return filler
            time.sleep(0.1)  # polling health
    raise TimeoutError(f"a full disk left the service SERVING for {timeout}s")


def test_a_full_disk_is_unavailable_not_serving_logged_once_and_recovers(
    small_filesystem: Path,
) -> None:
    database = small_filesystem / "conversations.db"
    url = f"sqlite:///{database}"
    service = ServiceProcess(small_filesystem.parent, ["--database-url", url], demo=True)
    with service, Load([grpc_create(service.address)] * 4) as load:
        load.wait_for_successes(30)
        filler = keep_full_until_not_serving(small_filesystem, service.address)
        full_at = time.monotonic()
        load.wait_for(FAILURES_DURING, {"UNAVAILABLE"}, started_after=full_at + 0.5)
        freeing_at = time.monotonic()
        filler.unlink()
        wait_for_health(service.address, SERVING)
        load.wait_for_successes(30)
        calls = load.stop()
        log = fault_log(service)

    during = [c for c in calls if c.started > full_at + 0.5 and ended(c) < freeing_at]
    assert during and {call.outcome for call in during} == {"UNAVAILABLE"}
    assert {call.outcome for call in calls} == {OK, "UNAVAILABLE"}
    assert_acknowledged_stored_once(calls, stored_questions(url))
    faults = [line for line in log if "database unavailable" in line]
    recoveries = [line for line in log if "database available again" in line]
    # A line when the fault begins and one, with the count, when it ends; no traceback.
    assert len(faults) == len(recoveries) == 1, log
    assert "(disk full)" in faults[0]
    assert re.search(r"SERVING: [1-9]\d* failures in", recoveries[0])
    assert "Traceback" not in "\n".join(log)


def test_a_read_only_database_is_unavailable_and_recovers(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = own_postgres.url
    authorization = basic_authorization(*organisation_with_key(url))

    def read_only(on: bool) -> None:
        # What a failover to a standby does to writes: every transaction read-only.
        admin = psycopg2.connect(url)
        try:
            admin.autocommit = True
            value = "on" if on else "off"
            admin.cursor().execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
            admin.cursor().execute("SELECT pg_reload_conf()")
        finally:
            admin.close()

    service = ServiceProcess(tmp_path, ["--database-url", url, "--processes", "1"], rest=True)
    with (
        service,
        Load(
            [grpc_create(service.address, authorization)] * 2
            + [rest_create(service.base_url, authorization)]
        ) as load,
    ):
        load.wait_for_successes(30)
        read_only(True)
        read_only_at = time.monotonic()
        try:
            wait_for_health(service.address, NOT_SERVING)
            load.wait_for(FAILURES_DURING, {"UNAVAILABLE"}, started_after=read_only_at + 0.5)
            load.wait_for(FAILURES_DURING, {"HTTP 503"}, started_after=read_only_at + 0.5)
            writable_at = time.monotonic()
        finally:
            read_only(False)
        wait_for_health(service.address, SERVING)
        load.wait_for_successes(30)
        calls = load.stop()
        log = fault_log(service)

    during = [c for c in calls if c.started > read_only_at + 0.5 and ended(c) < writable_at]
    assert during and {call.outcome for call in during} == {"UNAVAILABLE", "HTTP 503"}
    assert {call.outcome for call in calls} == {OK, "UNAVAILABLE", "HTTP 503"}
    assert_acknowledged_stored_once(calls, stored_questions(url))
    faults = [line for line in log if "database unavailable" in line]
    assert len(faults) == 1 and "(read-only)" in faults[0], log


def test_a_deleted_database_file_acknowledges_nothing_until_it_is_back(tmp_path: Path) -> None:
    database = tmp_path / "var" / "conversations.db"
    kept = tmp_path / "kept.db"
    service = ServiceProcess(tmp_path, demo=True)
    with service, Load([grpc_create(service.address)] * 3) as load:
        load.wait_for_successes(30)
        os.link(database, kept)  # what an operator restores it from: the same file
        database.unlink()
        deleted_at = time.monotonic()
        wait_for_health(service.address, NOT_SERVING)
        load.wait_for(FAILURES_DURING, {"UNAVAILABLE"}, started_after=deleted_at)
        restoring_at = time.monotonic()
        os.rename(kept, database)
        wait_for_health(service.address, SERVING)
        load.wait_for_successes(30)
        calls = load.stop()
        log = fault_log(service)

    # Not one create is acknowledged into the unlinked file, where a restart would lose it.
    while_gone = [c for c in calls if c.started > deleted_at and ended(c) < restoring_at]
    assert while_gone and {call.outcome for call in while_gone} == {"UNAVAILABLE"}
    assert_acknowledged_stored_once(calls, stored_questions(f"sqlite:///{database}"))
    assert any("(database file deleted or replaced)" in line for line in log), log
