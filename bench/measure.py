"""What every bench row is measured with: the calls, h2load and wrk runs of them (gRPC rows
taking turns on one server), the tallies of what runs stored, and the processes measured
(the service, the ceiling, the peers), each on 127.0.0.1, stopped by its PID."""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench import dataset, load, memory, report
from bench.load import Result
from bench.report import Row
from conversations.v4 import conversation_service_pb2 as pb
from harness.databases import fresh_postgres
from harness.service import ServiceProcess, free_port
from harness.support import (
    basic_authorization,
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
