"""`serve --processes N`: N gRPC server processes on one port, supervised by `serve`."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from harness.support import basic_authorization, organisation_with_key, stored_questions
from tests.e2e.load import (
    OK,
    Load,
    assert_acknowledged_stored_once,
    grpc_create,
    rest_create,
)
from tests.e2e.promtool import promtool
from tests.e2e.service import (
    DEMO_AUTHORIZATION,
    ServiceProcess,
    free_port,
    grpcurl,
    http,
    scrape,
)

CREATE = "/conversations.v4.ConversationService/CreateConversation"


def serving_pids(log: str) -> list[int]:
    """The pids of the server processes `serve` started first, as it logs them."""
    found = re.search(r"gRPC serving on \S+ in \d+ processes \(pids ([\d, ]+)\)", log)
    assert found, log
    return [int(pid) for pid in found.group(1).split(", ")]


def pids_serving(log: str, method: str) -> set[int]:
    """The pids whose access log lines show calls of `method`; every line is a whole JSON
    object (json.loads fails on one that another process's write split)."""
    pids = set()
    for line in map(json.loads, log.splitlines()):
        if line["logger"] == "conversation_service.access" and line.get("method") == method:
            pids.add(line["pid"])
    return pids


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it has exited
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_two_processes_share_the_creates_over_grpc_and_rest_and_store_each_once(
    database_url: str, tmp_path: Path
) -> None:
    authorization = DEMO_AUTHORIZATION
    if not database_url.startswith("sqlite"):
        authorization = basic_authorization(*organisation_with_key(database_url))
    metrics_port = free_port()
    args = ["--database-url", database_url, "--processes", "2"]
    service = ServiceProcess(
        tmp_path, [*args, "--metrics-address", str(metrics_port)], rest=True, demo=True
    )
    with service:
        # A channel each: connections the kernel spreads over the processes.
        creates = [grpc_create(service.address, authorization) for _ in range(6)]
        creates += [rest_create(service.base_url, authorization)] * 2
        with Load(creates, max_seconds=60) as load:
            load.wait_for_successes(300)
        calls = load.stop()
        samples = scrape(metrics_port)
        scraped = http("GET", f"http://127.0.0.1:{metrics_port}/metrics").body.decode()
    log = service.log()
    stored = stored_questions(database_url)

    assert load.outcomes() == {OK: len(calls)}
    assert_acknowledged_stored_once(calls, stored)
    assert len(stored) == len(calls)
    pids = serving_pids(log)
    assert len(pids) == 2
    assert pids_serving(log, CREATE) == set(pids)  # both took calls
    # The metrics page adds up both processes' counts.
    create = 'grpc_method="CreateConversation",grpc_service="conversations.v4.ConversationService"'
    assert samples[
        f'grpc_server_handled_total{{grpc_code="OK",{create},grpc_type="unary"}}'
    ] == len(calls)
    assert samples[f'grpc_server_started_total{{{create},grpc_type="unary"}}'] == len(calls)
    # The calls in flight, summed over the live processes: none once the load has stopped.
    assert samples[f'grpc_server_in_flight_calls{{{create},grpc_type="unary"}}'] == 0
    assert samples["conversation_service_database_up"] == 1
    checked = promtool("check", "metrics", text=scraped)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_killed_process_is_started_again_and_the_service_goes_on_answering(
    tmp_path: Path,
) -> None:
    metrics_port = free_port()
    args = ["--processes", "2", "--metrics-address", str(metrics_port)]
    service = ServiceProcess(tmp_path, args, rest=True, demo=True)
    with service:
        victim = serving_pids(service.log())[0]
        creates = [grpc_create(service.address) for _ in range(4)] + [rest_create(service.base_url)]
        with Load(creates, max_seconds=60) as load:
            load.wait_for_successes(100)
            os.kill(victim, signal.SIGKILL)
            service.wait_for_log(rf"server process \d+ \(pid {victim}\) exited with code -9")
            replacement = int(service.wait_for_log(r"started again \(pid (\d+)\)").group(1))
            load.wait_for_successes(100)
        calls = load.stop()
        # New connections: some reach the new process.
        after = [grpc_create(service.address)(f"load after {n}")[0] for n in range(40)]
        health = grpcurl(service.address, "grpc.health.v1.Health/Check")
        samples = scrape(metrics_port)
    log = service.log()
    stored = stored_questions(f"sqlite:///{tmp_path}/var/conversations.db")

    assert after == [OK] * 40
    assert '"SERVING"' in health.stdout
    assert replacement in pids_serving(log, CREATE)
    assert samples["conversation_service_process_restarts_total"] == 1
    assert_acknowledged_stored_once(calls, stored)


def test_sigterm_drains_every_process_and_exits_zero(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, ["--processes", "2"], rest=True, demo=True)
    with service:
        pids = serving_pids(service.log())
        envoy = int(re.findall(r"Envoy pid (\d+)", service.log())[0])
        with Load([grpc_create(service.address), rest_create(service.base_url)]) as load:
            load.wait_for_successes(50)
            service.process.send_signal(signal.SIGTERM)
            exit_code = service.process.wait(timeout=60)
        calls = load.stop()
    log = service.log()
    stored = stored_questions(f"sqlite:///{tmp_path}/var/conversations.db")

    assert exit_code == 0
    assert_acknowledged_stored_once(calls, stored)
    for number in (1, 2):
        assert f"server process {number} stopped" in log
    assert [pid for pid in [*pids, envoy] if is_running(pid)] == []


def test_the_processes_exit_when_serve_is_killed(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, ["--processes", "2"], rest=True, demo=True)
    with service:
        pids = serving_pids(service.log())
        envoy = int(re.findall(r"Envoy pid (\d+)", service.log())[0])
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(is_running(pid) for pid in [*pids, envoy]):
            time.sleep(0.1)

    assert [pid for pid in [*pids, envoy] if is_running(pid)] == []
    assert "server process 1 stopped" in service.log()


def is_running(pid: int) -> bool:
    """Whether a process runs (an exited child of a dead parent is reaped by init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_one_process_is_the_serve_process_itself(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, ["--processes", "1"], demo=True) as service:
        assert grpc_create(service.address)("load one process")[0] == OK
        assert children(service.process.pid) == []
