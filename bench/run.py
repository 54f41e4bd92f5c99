"""The benchmark: the real service under h2load (gRPC) and wrk (REST), against a bare
grpc.aio server (the ceiling, bench/ceiling.py) and two FastAPI peers, its votes on one
conversation, its memory over many creates, and its reads on a product of a million
conversations beside one of ten (bench/dataset.py).

Run from the repository root: `make bench` (or `.venv/bin/python -m bench.run`;
`.venv/bin/python -m bench.run organisation` for bench/organisation.py's rows alone,
`.venv/bin/python -m bench.run conditional` for bench/conditional.py's,
`.venv/bin/python -m bench.run moderation` for bench/moderation.py's,
`.venv/bin/python -m bench.run writes` for Create, Vote, Answer, Get and List on one server
process of each database, a read cache's rows beside them).
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench import (
    conditional,
    dataset,
    flood,
    load,
    memory,
    moderation,
    moderation_data,
    organisation,
    organisation_data,
    report,
    side_by_side,
)
from bench.load import Result
from bench.report import Row, memory_table, ratios, table
from conversations.v4 import conversation_service_pb2 as pb
from harness.databases import fresh_postgres
from harness.service import DEMO_CREDENTIALS, ServiceProcess, free_port
from harness.support import (
    basic_authorization,
    create_key,
    opened_store,
    organisation_with_key,
    stored_conversation,
    stored_count,
)
from server import logs

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
VOTE_METHOD = "/conversations.v4.ConversationService/IncrementConversationHelpful"
# The product of the one conversation the vote rows vote on.
VOTED_SKU = "BENCH-VOTED"
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


def vote_call(conversation_id: int) -> Call:
    return (VOTE_METHOD, pb.IncrementConversationHelpfulRequest(id=conversation_id, trkref="D10"))


def answer_call(conversation_id: int) -> Call:
    answer = pb.NewAnswer(response="Yes, it fits every model since 2017.", first_name="A")
    request = pb.CreateAnswerRequest(conversation_id=conversation_id, trkref="D10", answer=answer)
    return (f"{SERVICE_PATH}/CreateAnswer", request)


def list_call(sku: str, page_token: str = "") -> Call:
    request = pb.ListConversationsRequest(
        trkref="D10", sku=sku, page_size=20, page_token=page_token
    )
    return (f"{SERVICE_PATH}/ListConversations", request)


# What a row's runs add, read before and after each: rows stored, votes counted.
Tally = Callable[[], int]


@dataclass(frozen=True)
class Load:
    """A gRPC row: its call; what its runs must add as many of as they succeed, if
    anything; and the address of a server other than the service, if it is measured
    on one (its successes are then h2load's: HTTP 200)."""

    name: str
    call: Call
    counted: Tally | None = None
    address: str = ""


def rows_of(database_url: str) -> Tally:
    return functools.partial(stored_count, database_url)


def helpful_votes(database_url: str, conversation_id: int) -> Tally:
    def count() -> int:
        conversation = stored_conversation(database_url, conversation_id)
        assert conversation is not None, "the voted conversation is gone"
        return conversation.helpful

    return count


def answers_of(database_url: str, conversation_id: int) -> Tally:
    def count() -> int:
        conversation = stored_conversation(database_url, conversation_id)
        assert conversation is not None, "the answered conversation is gone"
        return conversation.answers_count

    return count


def voted_conversation(database_url: str) -> int:
    """A conversation of D10 without answers, for the vote rows: its id."""
    with opened_store(database_url) as store:
        return dataset.seed_answered(store, VOTED_SKU, 1, 0)[0]


def grpc_codes(service: ServiceProcess, method: str) -> collections.Counter[str]:
    """Status codes of `method` in the server's access log so far."""
    codes: collections.Counter[str] = collections.Counter()
    for line in service.log().splitlines():
        if '"event": "rpc"' in line:
            entry = json.loads(line)
            if entry["method"] == method:
                codes[entry["code"]] += 1
    return codes


def measure_grpc(
    server: ServiceProcess,
    rows: Sequence[Load],
    authorization: str,
    measure_seconds: float = MEASURE_SECONDS,
    warm_up_seconds: float = WARM_UP_SECONDS,
) -> list[Row]:
    """Warm up each row, then counted h2load runs of them taking turns, RUNS_EACH each: a
    machine whose speed drifts skews their ratios less.

    Successes are the calls the server answered OK, as its access log says.
    """
    runs = [grpc_run(server, row, authorization) for row in rows]
    counts = [max(1000, int(run(seconds=warm_up_seconds).per_second * measure_seconds)) // RUNS_EACH
              for run in runs]  # fmt: skip
    results: list[list[Result]] = [[] for _ in rows]
    stored = [0] * len(rows)
    for _ in range(RUNS_EACH):
        for i, (row, run) in enumerate(zip(rows, runs, strict=True)):
            time.sleep(0.5)
            counted_before = row.counted() if row.counted else 0
            codes_before = collections.Counter() if row.address else grpc_codes(server, row.call[0])
            result = run(count=counts[i])
            if not row.address:
                time.sleep(2 * logs.FLUSH_INTERVAL)  # the access log's last lines are written
                ok = (grpc_codes(server, row.call[0]) - codes_before)["OK"]
                result = replace(result, succeeded=min(result.succeeded, ok))
            results[i].append(result)
            stored[i] += row.counted() - counted_before if row.counted else 0
    return [
        Row(row.name, load.merge(measured), stored[i] if row.counted else None)
        for i, (row, measured) in enumerate(zip(rows, results, strict=True))
    ]


def grpc_run(server: ServiceProcess, row: Load, authorization: str) -> functools.partial[Result]:
    """An h2load run of the row's call, bounded by `count=` or `seconds=`."""
    method, message = row.call
    url = f"http://{row.address or server.address}{method}"
    return functools.partial(
        load.h2load, url, message, streams=STREAMS, authorization=authorization
    )


def measure_rest(
    name: str,
    url: str,
    json_body: str | None,
    authorization: str,
    counted: Tally | None = None,
    *,
    method: str = "",
    status: int = 200,
    if_none_match: str = "",
) -> Row:
    """Warm up, then a counted wrk run: POSTs of `json_body`, or GETs when it is None, or
    `method`, with If-None-Match when given. Successes are the responses of `status`;
    `counted` reads what they add."""
    run = functools.partial(
        load.wrk, url, json_body, connections=STREAMS, authorization=authorization,
        method=method, status=status, if_none_match=if_none_match,
    )  # fmt: skip
    warm = run(seconds=WARM_UP_SECONDS)
    time.sleep(0.5)
    counted_before = counted() if counted else 0
    result = run(count=max(1000, int(warm.per_second * MEASURE_SECONDS)))
    if counted is None:
        return Row(name, result)
    return Row(name, result, counted() - counted_before)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used itself (user and system), not its children's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_docs_page(server: ServiceProcess) -> Row:
    """GETs of the API explorer's page, which Envoy answers itself: the row's name says
    the CPU the `serve` process (not Envoy, its child) used a page meanwhile."""
    before = cpu_seconds(server.process.pid)
    row = measure_rest("", f"{server.base_url}/docs", None, "")
    assert row.result is not None
    used = cpu_seconds(server.process.pid) - before
    per_page_us = used / max(row.result.requests, 1) * 1e6
    name = (
        f"{report.DOCS_PAGE} REST API explorer page /docs (served by Envoy; the service's "
        f"CPU meanwhile: {used * 1e3:.0f} ms, {per_page_us:.2f} µs a page)"
    )
    return replace(row, name=name)


def measure_memory(
    server: ServiceProcess, authorization: str, database_url: str
) -> tuple[Row, list[memory.Footprint]]:
    """Warm up, then creates in a row: the RSS of the server's processes after the warm-up
    and after the creates, and the row of those creates."""
    run = grpc_run(server, Load("memory", CREATE), authorization)
    warm = run(seconds=WARM_UP_SECONDS)
    time.sleep(2 * logs.FLUSH_INTERVAL)
    rows_before, codes_before = stored_count(database_url), grpc_codes(server, CREATE[0])
    result, footprints = memory.creates_in_a_row(server.process.pid, run, warm.per_second)
    time.sleep(2 * logs.FLUSH_INTERVAL)
    ok = (grpc_codes(server, CREATE[0]) - codes_before)["OK"]
    result = replace(result, succeeded=min(result.succeeded, ok))
    name = f"{report.CREATE_MEMORY} gRPC Create, SQLite, {result.requests:,} in a row (memory)"
    return Row(name, result, stored_count(database_url) - rows_before), footprints


def service(
    workdir: Path,
    database_url: str,
    *,
    rest: bool = False,
    processes: int = 1,
    read_cache: bool = True,
) -> ServiceProcess:
    """`serve` on this database, with `processes` server processes (one unless asked),
    keeping what it reads unless `read_cache` is False."""
    args = ["--database-url", database_url, "--processes", str(processes)]
    args += [] if read_cache else ["--read-cache-mib", "0"]
    return ServiceProcess(workdir, args, rest=rest, demo=True)


@contextlib.contextmanager
def rest_service(workdir: Path, database_url: str) -> Iterator[ServiceProcess]:
    """`serve` with REST on this database, once Envoy listens."""
    with service(workdir, database_url, rest=True) as server:
        assert server.http_address is not None
        wait_for_port(int(server.http_address.rsplit(":", 1)[1]), server.process)
        yield server


def conditional_rows(workdir: Path) -> list[Row]:
    """bench/conditional.py's rows alone: Health/Check, REST Get, REST Get answered 304,
    REST /readyz."""
    demo = basic_authorization(*DEMO_CREDENTIALS)
    health = Load(f"{report.HEALTH} gRPC Health/Check", HEALTH)
    return conditional.run(workdir, rest_service,
                           lambda server: measure_grpc(server, [health], demo)[0],
                           measure_rest, demo)  # fmt: skip


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database with the schema and the demo organisation D10, and an
    authorization for D10; dropped after."""
    with fresh_postgres("conversations_bench") as url:
        yield url, basic_authorization(*organisation_with_key(url))


@contextlib.contextmanager
def bench_process(workdir: Path, module: str, *args: str) -> Iterator[str]:
    """`python -m MODULE ARGS... 127.0.0.1 PORT` on a free port, stopped by its PID: the
    ceiling or a peer. Its address."""
    port = free_port()
    log = (workdir / f"{module}.log").open("w")
    command = [sys.executable, "-m", module, *args, "127.0.0.1", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def ceiling(workdir: Path) -> Iterator[str]:
    """The bare grpc.aio server, checked to answer SERVING; its address."""
    with bench_process(workdir, "bench.ceiling") as address:
        with grpc.insecure_channel(address) as channel:
            check = channel.unary_unary(
                HEALTH[0],
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            answer = check(HEALTH[1], timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, "the ceiling is not serving"
        yield address


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{process.args!r} did not listen in time")


def run_all(workdir: Path) -> tuple[list[Row], list[memory.Footprint]]:
    """Every row on the small databases, and the footprints of the memory row."""
    sqlite_path = workdir / "conversations.db"
    sqlite_url = f"sqlite:///{sqlite_path}"
    # `serve --demo` gives a fresh embedded database the demo organisation and its demo key.
    demo = basic_authorization(*DEMO_CREDENTIALS)
    with service(workdir, sqlite_url) as server, ceiling(workdir) as bare:
        with opened_store(sqlite_url) as store:
            ids = dataset.seed_answered(store, ANSWERED_SKU, ANSWERED, ANSWERS_EACH)
        conversation_id = ids[len(ids) // 2]
        voted = voted_conversation(sqlite_url)
        rows = measure_grpc(
            server,
            [
                Load(f"{report.CEILING} bare grpc.aio Health/Check (the ceiling)", HEALTH,
                     address=bare),
                Load(f"{report.HEALTH} gRPC Health/Check", HEALTH),
                Load(f"{report.CREATE_SQLITE} gRPC Create, SQLite", CREATE, rows_of(sqlite_url)),
                Load(f"{report.VOTE_SQLITE} gRPC Vote, SQLite", vote_call(voted),
                     helpful_votes(sqlite_url, voted)),
                Load(f"{report.GET} gRPC Get, SQLite", get_call(conversation_id)),
                Load(f"{report.LIST} gRPC List first page, SQLite", list_call(ANSWERED_SKU)),
            ],
            demo,
        )  # fmt: skip
        with flood.flood(server, get_call(conversation_id)[0]):
            rows += measure_grpc(server, [Load(flood.FLOODED_GET_NAME, get_call(conversation_id))],
                                 demo)  # fmt: skip
    # The same reads from the database at every call, as after each write to their product.
    with service(workdir, sqlite_url, read_cache=False) as server:
        rows += measure_grpc(
            server,
            [Load(f"{report.GET_UNCACHED} gRPC Get, SQLite, no read cache",
                  get_call(conversation_id)),
             Load(f"{report.LIST_UNCACHED} gRPC List first page, SQLite, no read cache",
                  list_call(ANSWERED_SKU))],
            demo,
        )  # fmt: skip
    with postgres_database() as (postgres_url, key), service(workdir, postgres_url) as server:
        voted_postgres = voted_conversation(postgres_url)
        rows += measure_grpc(
            server,
            [
                Load(f"{report.CREATE_POSTGRES} gRPC Create, PostgreSQL", CREATE,
                     rows_of(postgres_url)),
                Load(f"{report.VOTE_POSTGRES} gRPC Vote, PostgreSQL", vote_call(voted_postgres),
                     helpful_votes(postgres_url, voted_postgres)),
            ],
            key,
        )  # fmt: skip
    # Every core: two server processes on the one port, on each database.
    with service(workdir, sqlite_url, processes=2) as server:
        rows += measure_grpc(
            server,
            [Load(f"{report.CREATE_SQLITE_2} gRPC Create, SQLite, 2 processes", CREATE,
                  rows_of(sqlite_url))],
            demo,
        )  # fmt: skip
    with postgres_database() as (url, key), service(workdir, url, processes=2) as server:
        rows += measure_grpc(
            server,
            [Load(f"{report.CREATE_POSTGRES_2} gRPC Create, PostgreSQL, 2 processes", CREATE,
                  rows_of(url))],
            key,
        )  # fmt: skip
    with rest_service(workdir, sqlite_url) as server:
        base = server.base_url
        rows += [
            measure_rest(f"{report.CREATE_REST} REST Create via Envoy, SQLite", base + REST_PATH,
                         CREATE_JSON, demo, rows_of(sqlite_url)),
            measure_rest(f"{report.VOTE_REST} REST Vote via Envoy, SQLite",
                         f"{base}/v4/conversations/{voted}/increment_helpful?trkref=D10", None,
                         demo, helpful_votes(sqlite_url, voted), method="POST", status=202),
            measure_rest(f"{report.GET_REST} REST Get via Envoy, SQLite",
                         f"{base}/v4/conversations/{conversation_id}?trkref=D10", None, demo),
            measure_rest(f"{report.LIST_REST} REST List first page via Envoy, SQLite",
                         f"{base}{REST_PATH}?sku={ANSWERED_SKU}", None, demo),
            conditional.not_modified_row(base, conversation_id, demo, measure_rest),
            conditional.ready_row(base, measure_rest),
        ]  # fmt: skip
        rows.append(measure_docs_page(server))
    peers = (
        (report.NAIVE_PEER, "naive FastAPI peer Create, SQLite (sync endpoint, thread pool, "
         "a transaction per request)", "bench.peer", sqlite_url),
        (report.STRONG_PEER, "strong FastAPI peer Create, SQLite (async endpoint, uvloop, "
         "httptools, one connection, group commit)", "bench.strong_peer", str(sqlite_path)),
    )  # fmt: skip
    for number, name, module, database in peers:
        with bench_process(workdir, module, database) as peer:
            rows.append(measure_rest(f"{number} {name}",
                                     f"http://{peer}{REST_PATH}", CREATE_JSON, "",
                                     rows_of(sqlite_url)))  # fmt: skip
    # Its own database: the 200,000 rows slow no other row.
    memory_url = f"sqlite:///{workdir}/memory.db"
    with service(workdir, memory_url) as server:
        row, footprints = measure_memory(server, demo, memory_url)
    rows.append(row)
    return sorted(rows, key=lambda row: row.number), footprints


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
    conversations, each beside the same call on the product of ten, on both databases;
    without the read cache, so that every page is read from the indexes."""
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
        with service(workdir, url, read_cache=False) as server:
            check_deep_page(server, key, large)
            rows = [
                Load(f"{database} {name} {size}", call)
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


def measure_calls(server: ServiceProcess, calls: list[tuple[str, Call]], key: str) -> list[Result]:
    """The large data set's measurement of calls taking turns on one server."""
    rows = [Load(name, call) for name, call in calls]
    measured = measure_grpc(server, rows, key, LARGE_MEASURE_SECONDS, LARGE_WARM_UP_SECONDS)
    return [row.result for row in measured if row.result is not None]


def write_rows(workdir: Path) -> list[Row]:
    """Create, Vote and Answer on one server process of each database, and Get and List
    on SQLite kept and read every time: the rows every write and read path crosses."""
    sqlite_url = f"sqlite:///{workdir / 'conversations.db'}"
    demo = basic_authorization(*DEMO_CREDENTIALS)
    with service(workdir, sqlite_url) as server:
        with opened_store(sqlite_url) as store:
            ids = dataset.seed_answered(store, ANSWERED_SKU, ANSWERED, ANSWERS_EACH)
        conversation_id, voted = ids[len(ids) // 2], voted_conversation(sqlite_url)
        answered = voted_conversation(sqlite_url)
        rows = measure_grpc(
            server,
            [
                Load(f"{report.HEALTH} gRPC Health/Check", HEALTH),
                Load(f"{report.CREATE_SQLITE} gRPC Create, SQLite", CREATE, rows_of(sqlite_url)),
                Load(f"{report.VOTE_SQLITE} gRPC Vote, SQLite", vote_call(voted),
                     helpful_votes(sqlite_url, voted)),
                Load(f"{report.ANSWER_SQLITE} gRPC Answer, SQLite", answer_call(answered),
                     answers_of(sqlite_url, answered)),
                Load(f"{report.GET} gRPC Get, SQLite", get_call(conversation_id)),
                Load(f"{report.LIST} gRPC List first page, SQLite", list_call(ANSWERED_SKU)),
            ],
            demo,
        )  # fmt: skip
    with service(workdir, sqlite_url, read_cache=False) as server:
        rows += measure_grpc(
            server,
            [Load(f"{report.GET_UNCACHED} gRPC Get, SQLite, no read cache",
                  get_call(conversation_id)),
             Load(f"{report.LIST_UNCACHED} gRPC List first page, SQLite, no read cache",
                  list_call(ANSWERED_SKU))],
            demo,
        )  # fmt: skip
    with postgres_database() as (url, key), service(workdir, url) as server:
        voted, answered = voted_conversation(url), voted_conversation(url)
        rows += measure_grpc(
            server,
            [
                Load(f"{report.CREATE_POSTGRES} gRPC Create, PostgreSQL", CREATE, rows_of(url)),
                Load(f"{report.VOTE_POSTGRES} gRPC Vote, PostgreSQL", vote_call(voted),
                     helpful_votes(url, voted)),
                Load(f"{report.ANSWER_POSTGRES} gRPC Answer, PostgreSQL", answer_call(answered),
                     answers_of(url, answered)),
            ],
            key,
        )  # fmt: skip
    return sorted(rows, key=lambda row: row.number)


def organisation_table(workdir: Path) -> tuple[str, bool]:
    """The rows of search, filters and the organisation-wide List (bench/organisation.py)."""
    return side_by_side.table(organisation.run(workdir, service, measure_calls, CREATE))


def moderation_table(workdir: Path) -> tuple[str, bool]:
    """The rows of the moderation queue, List beside pending items and screened Create
    (bench/moderation.py)."""
    return side_by_side.table(moderation.run(workdir, service, measure_calls, CREATE))


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
    if sys.argv[1:] == ["organisation"]:  # these rows alone
        with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
            text, met = organisation_table(Path(tmp))
        print(machine(), text, f"every target met: {met}", sep="\n\n")
        return 0
    if sys.argv[1:] == ["moderation"]:  # these rows alone
        with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
            text, met = moderation_table(Path(tmp))
        print(machine(), text, f"every target met: {met}", sep="\n\n")
        return 0
    if sys.argv[1:] == ["writes"]:  # these rows alone
        with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
            rows = write_rows(Path(tmp))
        print(machine(), table(rows), sep="\n\n")
        return 0 if all(row.rows_match for row in rows) else 1
    if sys.argv[1:] == ["conditional"]:  # these rows alone
        with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
            rows = conditional_rows(Path(tmp))
        lines = ratios(rows)[0].splitlines()
        measured = [ln for ln in lines if ln.split("|")[2].strip() != "pending"]
        print(machine(), table(rows), "\n".join(measured), sep="\n\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
        rows, footprints = run_all(Path(tmp))
        pairs = run_large(Path(tmp))
        organisation_text, organisation_met = organisation_table(Path(tmp))
        moderation_text, moderation_met = moderation_table(Path(tmp))
    ratio_table, targets_met = ratios(rows)
    memory_row = next(row for row in rows if row.number == report.CREATE_MEMORY)
    assert memory_row.result is not None
    memory_text, memory_met = memory_table(
        memory_row.result.succeeded, memory_row.result.seconds, footprints
    )
    print(machine(), table(rows), ratio_table, memory_text, sep="\n\n")
    if memory_row.result.requests < memory.TARGET_CREATES:
        print(f"\n{memory_row.result.requests:,} creates fit in the memory row's bound of "
              f"{memory.TIME_BOUND_SECONDS} s, not {memory.TARGET_CREATES:,}.")  # fmt: skip
    title = (
        f"{dataset.LARGE_COUNT:,} conversations about {dataset.LARGE_SKU} beside "
        f"{dataset.SMALL_COUNT} about {dataset.SMALL_SKU}, one organisation, pages of 20:"
    )
    pair_table, large_met = large_table(pairs)
    print("", title, pair_table, sep="\n\n")
    rows_ok = all(row.rows_match for row in rows)
    print(f"\nrows stored and votes counted = successful responses in every run: {rows_ok}")
    title = (
        f"{organisation.CONVERSATIONS:,} conversations of one organisation over "
        f"{organisation_data.PRODUCTS:,} products, beside an organisation of ten:"
    )
    print("", title, organisation_text, sep="\n\n")
    title = (
        f"Moderation: a queue of {moderation_data.QUEUE_PENDING:,} pending among "
        f"{moderation_data.QUEUE_CONVERSATIONS:,}, a product of {moderation.CONVERSATIONS:,} "
        f"a third pending, Create screening {moderation.TERMS:,} blocked terms:"
    )
    print("", title, moderation_text, sep="\n\n")
    every = targets_met and large_met and memory_met and organisation_met and moderation_met
    print(f"every target met: {every}")
    return 0 if rows_ok else 1


if __name__ == "__main__":
    sys.exit(main())
