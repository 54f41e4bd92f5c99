"""The benchmark: the real service under h2load (gRPC) and wrk (REST), against a FastAPI peer.

Run from the repository root: `make bench` (or `.venv/bin/python -m bench.run`).
Every server binds 127.0.0.1 on a free port and is stopped by its PID; every load
run is bounded by a request count sized from a short warm-up, and by a time limit.
Every row's percentiles are of its requests' own durations, as h2load logs them
and as the wrk script times them (wrk's own are corrected for coordinated omission).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench import load
from bench.load import Result
from conversations.v4 import conversation_service_pb2 as pb
from server import logs
from tests.databases import fresh_postgres
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, free_port
from tests.support import basic_authorization, organisation_with_key, stored_count

STREAMS = 16
WARM_UP_SECONDS = 3
MEASURE_SECONDS = 10
# gRPC rows measured on one server take turns, in this many runs each.
RUNS_EACH = 3
# A method's path and a request message for it.
Call = tuple[str, Message]
CREATE = (
    "/conversations.v4.ConversationService/CreateConversation",
    pb.CreateConversationRequest(
        trkref="D10", first_name="A shopper", question="How is this product?", sku="AIPTPDV5700"
    ),
)
HEALTH = ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest())
CREATE_JSON = json.dumps({"first_name": "A shopper", "question": "How is this product?",
                          "sku": "AIPTPDV5700"})  # fmt: skip
REST_PATH = "/v4/organisations/D10/conversations"


@dataclass(frozen=True)
class Row:
    name: str
    result: Result | None  # None: not measured in this build
    stored: int | None = None  # rows the run added, for creates

    @property
    def rows_match(self) -> bool:
        return self.result is None or self.stored is None or self.stored == self.result.succeeded


def grpc_codes(service: ServiceProcess, method: str) -> collections.Counter[str]:
    """Status codes of `method` in the server's access log so far."""
    codes: collections.Counter[str] = collections.Counter()
    for line in service.log().splitlines():
        start = line.find('{"event": "rpc"')
        if start >= 0:
            entry = json.loads(line[start:])
            if entry["method"] == method:
                codes[entry["code"]] += 1
    return codes


def measure_grpc(
    server: ServiceProcess, rows: Sequence[tuple[str, Call, str]], authorization: str
) -> list[Row]:
    """Warm up each (name, call, database URL or ""), then counted h2load runs of them taking
    turns, RUNS_EACH each: a machine whose speed drifts skews their ratios less.

    Successes are the calls the server answered OK.
    """
    runs: list[functools.partial[Result]] = []
    for _, (method, message), _ in rows:
        url = f"http://{server.address}{method}"
        runs.append(functools.partial(
            load.h2load, url, message, streams=STREAMS, authorization=authorization
        ))  # fmt: skip
    counts = [max(1000, int(run(seconds=WARM_UP_SECONDS).per_second * MEASURE_SECONDS)) // RUNS_EACH
              for run in runs]  # fmt: skip
    results: list[list[Result]] = [[] for _ in rows]
    stored = [0] * len(rows)
    for _ in range(RUNS_EACH):
        for i, ((_, (method, _), database_url), run) in enumerate(zip(rows, runs, strict=True)):
            time.sleep(0.5)
            rows_before = stored_count(database_url) if database_url else 0
            codes_before = grpc_codes(server, method)
            result = run(count=counts[i])
            time.sleep(2 * logs.FLUSH_INTERVAL)  # the access log's last lines are written
            ok = (grpc_codes(server, method) - codes_before)["OK"]
            results[i].append(replace(result, succeeded=min(result.succeeded, ok)))
            stored[i] += stored_count(database_url) - rows_before if database_url else 0
    return [
        Row(name, load.merge(measured), stored[i] if database_url else None)
        for i, ((name, _, database_url), measured) in enumerate(zip(rows, results, strict=True))
    ]


def measure_rest(name: str, address: str, authorization: str, database_url: str) -> Row:
    """Warm up, then a counted wrk run of REST creates."""
    url = f"http://{address}{REST_PATH}"
    run = functools.partial(
        load.wrk, url, CREATE_JSON, connections=STREAMS, authorization=authorization
    )
    warm = run(seconds=WARM_UP_SECONDS)
    time.sleep(0.5)
    rows_before = stored_count(database_url)
    result = run(count=max(1000, int(warm.per_second * MEASURE_SECONDS)))
    return Row(name, result, stored_count(database_url) - rows_before)


def service(workdir: Path, database_url: str, *, rest: bool = False) -> ServiceProcess:
    return ServiceProcess(workdir, ["--database-url", database_url], rest=rest, demo=True)


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database with the schema and the demo organisation D10, and an
    authorization for D10; dropped after."""
    with fresh_postgres("conversations_bench") as url:
        yield url, basic_authorization(*organisation_with_key(url))


@contextlib.contextmanager
def fastapi_peer(workdir: Path, database_url: str) -> Iterator[str]:
    """The FastAPI peer on a free port, over a database the service has set up."""
    port = free_port()
    log = (workdir / "peer.log").open("w")
    command = [sys.executable, "-m", "bench.peer", database_url, "127.0.0.1", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the peer exited early")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError("the peer did not listen in time")


def run_all(workdir: Path) -> list[Row]:
    sqlite_url = f"sqlite:///{workdir}/conversations.db"
    # `serve --demo` gives a fresh embedded database the demo organisation and its demo key.
    demo = basic_authorization(*DEMO_CREDENTIALS)
    with service(workdir, sqlite_url) as server:
        rows = measure_grpc(
            server,
            [("1 gRPC Health/Check", HEALTH, ""), ("2 gRPC Create, SQLite", CREATE, sqlite_url)],
            demo,
        )
    with postgres_database() as (postgres_url, key), service(workdir, postgres_url) as server:
        rows += measure_grpc(server, [("3 gRPC Create, PostgreSQL", CREATE, postgres_url)], key)
    with service(workdir, sqlite_url, rest=True) as server:
        assert server.http_address is not None
        wait_for_port(int(server.http_address.rsplit(":", 1)[1]), server.process)
        rows.append(
            measure_rest("4 REST Create via Envoy, SQLite", server.http_address, demo, sqlite_url)
        )
    with fastapi_peer(workdir, sqlite_url) as peer:
        rows.append(measure_rest("5 FastAPI peer Create, SQLite", peer, "", sqlite_url))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| row | ok req/s | p50 ms | p99 ms | max ms | errors | rows stored = successes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        r = row.result
        if r is None:
            lines.append(f"| {row.name} | pending | | | | | |")
            continue
        check = "n/a" if row.stored is None else f"{row.stored} = {r.succeeded}: {row.rows_match}"
        lines.append(
            f"| {row.name} | {r.per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.max_ms:,.0f} | {r.errors} | {check} |"
        )
    return "\n".join(lines)


def ratios(rows: list[Row]) -> tuple[str, bool]:
    health, sqlite, postgres, rest, peer = (row.result for row in rows)
    checks: list[tuple[str, Result | None, Result | None, float]] = [
        ("gRPC Create SQLite / Health", sqlite, health, 0.6),
        ("gRPC Create SQLite / FastAPI peer", sqlite, peer, 2.5),
        ("REST Create via Envoy / FastAPI peer", rest, peer, 2.0),
        ("gRPC Create PostgreSQL / Health", postgres, health, 0.4),
    ]
    lines, ok = ["| ratio | measured | target | met |", "|---|---:|---:|---|"], True
    for name, top, bottom, target in checks:
        if top is None or bottom is None:
            lines.append(f"| {name} | pending | >= {target} | pending |")
            continue
        value = top.per_second / bottom.per_second
        ok &= value >= target
        lines.append(f"| {name} | {value:.2f} | >= {target} | {value >= target} |")
    for label, result in (("SQLite", sqlite), ("PostgreSQL", postgres), ("REST", rest)):
        if result is not None:
            value = result.p99_ms / result.p50_ms
            ok &= value <= 4
            lines.append(f"| Create {label} p99 / p50 | {value:.2f} | <= 4 | {value <= 4} |")
    return "\n".join(lines), ok


def machine() -> str:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        platform.machine(),
    )  # fmt: skip
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{STREAMS} concurrent streams, ~{MEASURE_SECONDS} s per row, load generator on the "
        f"same machine, {time.strftime('%Y-%m-%d')}"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
        rows = run_all(Path(tmp))
    ratio_table, targets_met = ratios(rows)
    print(machine(), table(rows), ratio_table, sep="\n\n")
    rows_ok = all(row.rows_match for row in rows)
    print(f"\nrows stored = successful responses in every run: {rows_ok}")
    print(f"every target met: {targets_met}")
    return 0 if rows_ok else 1


if __name__ == "__main__":
    sys.exit(main())
