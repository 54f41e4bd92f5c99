"""The benchmark: the real service under h2load (gRPC) and wrk (REST), against a FastAPI peer,
and its reads on a product of a million conversations beside one of ten (bench/dataset.py).

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

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench import dataset, load
from bench.load import Result
from conversations.v4 import conversation_service_pb2 as pb
from server import logs
from tests.databases import fresh_postgres
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, free_port
from tests.support import (
    basic_authorization,
    create_key,
    opened_store,
    organisation_with_key,
    stored_count,
)

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
SERVICE_PATH = "/conversations.v4.ConversationService"
# The product the Get and List rows read: 20 conversations with 2 answers each.
ANSWERED_SKU, ANSWERED, ANSWERS_EACH = "BENCH-ANSWERED", 20, 2
# The rows on the large data set: shorter, six to a database.
LARGE_WARM_UP_SECONDS = 1
LARGE_MEASURE_SECONDS = 4
# How deep the deep List page is, in pages of 20.
DEEP_PAGES = 5000
# The large data set's target: each call on the large product within this factor of
# the same call on the small one.
LARGE_FACTOR = 2.0


def get_call(conversation_id: int) -> Call:
    return (f"{SERVICE_PATH}/GetConversation",
            pb.GetConversationRequest(id=conversation_id, trkref="D10"))  # fmt: skip


def list_call(sku: str, page_token: str = "") -> Call:
    request = pb.ListConversationsRequest(
        trkref="D10", sku=sku, page_size=20, page_token=page_token
    )
    return (f"{SERVICE_PATH}/ListConversations", request)


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
    server: ServiceProcess,
    rows: Sequence[tuple[str, Call, str]],
    authorization: str,
    measure_seconds: float = MEASURE_SECONDS,
    warm_up_seconds: float = WARM_UP_SECONDS,
) -> list[Row]:
    """Warm up each (name, call, database URL or ""), then counted h2load runs of them taking
    turns, RUNS_EACH each: a machine whose speed drifts skews their ratios less.

    Successes are the calls the server answered OK. A database URL counts the rows a
    create row stored; reads give "".
    """
    runs: list[functools.partial[Result]] = []
    for _, (method, message), _ in rows:
        url = f"http://{server.address}{method}"
        runs.append(functools.partial(
            load.h2load, url, message, streams=STREAMS, authorization=authorization
        ))  # fmt: skip
    counts = [max(1000, int(run(seconds=warm_up_seconds).per_second * measure_seconds)) // RUNS_EACH
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


def measure_rest(
    name: str, url: str, json_body: str | None, authorization: str, database_url: str = ""
) -> Row:
    """Warm up, then a counted wrk run: POSTs of `json_body` (creates, whose stored rows
    `database_url` counts), or GETs when it is None."""
    run = functools.partial(
        load.wrk, url, json_body, connections=STREAMS, authorization=authorization
    )
    warm = run(seconds=WARM_UP_SECONDS)
    time.sleep(0.5)
    rows_before = stored_count(database_url) if database_url else 0
    result = run(count=max(1000, int(warm.per_second * MEASURE_SECONDS)))
    if not database_url:
        return Row(name, result)
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
        with opened_store(sqlite_url) as store:
            ids = dataset.seed_answered(store, ANSWERED_SKU, ANSWERED, ANSWERS_EACH)
        conversation_id = ids[len(ids) // 2]
        rows = measure_grpc(
            server,
            [
                ("1 gRPC Health/Check", HEALTH, ""),
                ("2 gRPC Create, SQLite", CREATE, sqlite_url),
                ("6 gRPC Get, SQLite", get_call(conversation_id), ""),
                ("7 gRPC List first page, SQLite", list_call(ANSWERED_SKU), ""),
            ],
            demo,
        )
    with postgres_database() as (postgres_url, key), service(workdir, postgres_url) as server:
        rows += measure_grpc(server, [("3 gRPC Create, PostgreSQL", CREATE, postgres_url)], key)
    with service(workdir, sqlite_url, rest=True) as server:
        assert server.http_address is not None
        wait_for_port(int(server.http_address.rsplit(":", 1)[1]), server.process)
        base = server.base_url
        rows += [
            measure_rest("4 REST Create via Envoy, SQLite", base + REST_PATH, CREATE_JSON, demo,
                         sqlite_url),
            measure_rest("8 REST Get via Envoy, SQLite",
                         f"{base}/v4/conversations/{conversation_id}?trkref=D10", None, demo),
            measure_rest("9 REST List first page via Envoy, SQLite",
                         f"{base}{REST_PATH}?sku={ANSWERED_SKU}", None, demo),
        ]  # fmt: skip
    with fastapi_peer(workdir, sqlite_url) as peer:
        rows.append(
            measure_rest("5 FastAPI peer Create, SQLite", f"http://{peer}{REST_PATH}", CREATE_JSON,
                         "", sqlite_url)
        )  # fmt: skip
    return sorted(rows, key=_number)


def _number(row: Row) -> int:
    return int(row.name.split()[0])


@dataclass(frozen=True)
class Pair:
    """One call on the large product and the same call on the small one."""

    database: str
    call: str
    large: Result
    small: Result

    @property
    def ratio(self) -> float:
        """How many times the small product's throughput the large one's is below."""
        return self.small.per_second / self.large.per_second if self.large.per_second else 0.0

    @property
    def met(self) -> bool:
        return 0 < self.ratio <= LARGE_FACTOR


def run_large(workdir: Path) -> list[Pair]:
    """Detail, the first List page and a page DEEP_PAGES deep on the product of a million
    conversations, each beside the same call on the product of ten, on both databases."""
    pairs: list[Pair] = []
    for database, url in (("SQLite", dataset.sqlite_dataset()),
                          ("PostgreSQL", dataset.postgres_dataset())):  # fmt: skip
        key = basic_authorization(*create_key(url, "D10"))
        with opened_store(url) as store, store.reading():
            large = dataset.targets(dataset.LARGE_SKU, DEEP_PAGES)
            small = dataset.targets(dataset.SMALL_SKU, 0)
        calls = [
            ("Detail", get_call(large.conversation_id), get_call(small.conversation_id)),
            ("List first page", list_call(dataset.LARGE_SKU), list_call(dataset.SMALL_SKU)),
            (f"List page {DEEP_PAGES + 1:,}", list_call(dataset.LARGE_SKU, large.page_token),
             list_call(dataset.SMALL_SKU, small.page_token)),
        ]  # fmt: skip
        with service(workdir, url) as server:
            check_deep_page(server, key, large)
            rows = [
                (f"{database} {name} {size}", call, "")
                for name, *both in calls
                for size, call in zip(("1M", "10"), both, strict=True)
            ]
            measured = measure_grpc(server, rows, key, LARGE_MEASURE_SECONDS, LARGE_WARM_UP_SECONDS)
        for (name, *_), big, little in zip(calls, measured[::2], measured[1::2], strict=True):
            assert big.result is not None and little.result is not None
            pairs.append(Pair(database, name, big.result, little.result))
    return pairs


def check_deep_page(server: ServiceProcess, authorization: str, large: dataset.Targets) -> None:
    """The deep page's token is taken, and its page starts where the data set says, under
    a summary of the whole product."""
    method, request = list_call(dataset.LARGE_SKU, large.page_token)
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary(
            method,
            request_serializer=pb.ListConversationsRequest.SerializeToString,
            response_deserializer=pb.ListConversationsResponse.FromString,
        )
        page = call(request, metadata=(("authorization", authorization),), timeout=30)
    assert page.conversations[0].id == large.page_first_id, "the deep page starts elsewhere"
    assert page.summary.question_count == dataset.LARGE_COUNT, "the summary is not the product's"


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
    r = {_number(row): row.result for row in rows}
    health = r[1]
    checks: list[tuple[str, Result | None, Result | None, float | None]] = [
        ("gRPC Create SQLite / Health", r[2], health, 0.6),
        ("gRPC Create SQLite / FastAPI peer", r[2], r[5], 2.5),
        ("REST Create via Envoy / FastAPI peer", r[4], r[5], 2.0),
        ("gRPC Create PostgreSQL / Health", r[3], health, 0.4),
        ("gRPC Get / Health", r[6], health, 0.6),
        ("gRPC List first page / Health", r[7], health, 0.3),
        ("REST Get via Envoy / Health", r[8], health, None),
        ("REST List first page via Envoy / Health", r[9], health, None),
    ]
    lines, ok = ["| ratio | measured | target | met |", "|---|---:|---:|---|"], True
    for name, top, bottom, target in checks:
        shown = "none" if target is None else f">= {target}"
        if top is None or bottom is None:
            lines.append(f"| {name} | pending | {shown} | pending |")
            continue
        value = top.per_second / bottom.per_second
        met = target is None or value >= target
        ok &= met
        lines.append(f"| {name} | {value:.2f} | {shown} | {'n/a' if target is None else met} |")
    spreads = (("Create SQLite", 2), ("Create PostgreSQL", 3), ("Create REST", 4),
               ("Get gRPC", 6), ("List gRPC", 7), ("Get REST", 8), ("List REST", 9))  # fmt: skip
    for label, number in spreads:
        result = r.get(number)
        if result is not None:
            value = result.p99_ms / result.p50_ms
            ok &= value <= 4
            lines.append(f"| {label} p99 / p50 | {value:.2f} | <= 4 | {value <= 4} |")
    return "\n".join(lines), ok


def large_table(pairs: list[Pair]) -> tuple[str, bool]:
    lines = [
        f"| database | call | 1M ok req/s | 10 ok req/s | 1M p50 / p99 ms | 10 p50 / p99 ms "
        f"| errors | 10 / 1M req/s | 1M / 10 p50 | met (<= {LARGE_FACTOR}) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in pairs:
        big, small = p.large, p.small
        lines.append(
            f"| {p.database} | {p.call} | {big.per_second:,.0f} | {small.per_second:,.0f} "
            f"| {big.p50_ms:.2f} / {big.p99_ms:.2f} | {small.p50_ms:.2f} / {small.p99_ms:.2f} "
            f"| {big.errors + small.errors} | {p.ratio:.2f} | {big.p50_ms / small.p50_ms:.2f} "
            f"| {p.met} |"
        )
    return "\n".join(lines), all(p.met for p in pairs)


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
        pairs = run_large(Path(tmp))
    ratio_table, targets_met = ratios(rows)
    pair_table, large_met = large_table(pairs)
    print(machine(), table(rows), ratio_table, sep="\n\n")
    title = (
        f"{dataset.LARGE_COUNT:,} conversations about {dataset.LARGE_SKU} beside "
        f"{dataset.SMALL_COUNT} about {dataset.SMALL_SKU}, one organisation, pages of 20:"
    )
    print("", title, pair_table, sep="\n\n")
    rows_ok = all(row.rows_match for row in rows)
    print(f"\nrows stored = successful responses in every run: {rows_ok}")
    print(f"every target met: {targets_met and large_met}")
    return 0 if rows_ok else 1


if __name__ == "__main__":
    sys.exit(main())
