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

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    conditional,
    dataset,
    flood,
    memory,
    moderation,
    moderation_data,
    organisation,
    organisation_data,
    report,
    side_by_side,
)
from bench.large import LARGE_MEASURE_SECONDS, LARGE_WARM_UP_SECONDS, large_table, run_large
from bench.load import Result
from bench.measure import (
    CREATE,
    CREATE_JSON,
    HEALTH,
    MEASURE_SECONDS,
    REST_PATH,
    STREAMS,
    Call,
    Load,
    answer_call,
    answers_of,
    bench_process,
    ceiling,
    get_call,
    helpful_votes,
    list_call,
    measure_docs_page,
    measure_grpc,
    measure_memory,
    measure_rest,
    postgres_database,
    rest_service,
    rows_of,
    service,
    vote_call,
    voted_conversation,
)
from bench.report import Row, memory_table, ratios, table
from harness.service import DEMO_CREDENTIALS, ServiceProcess
from harness.support import basic_authorization, opened_store

# The product the Get and List rows read: 20 conversations with 2 answers each.
ANSWERED_SKU, ANSWERED, ANSWERS_EACH = "BENCH-ANSWERED", 20, 2


def conditional_rows(workdir: Path) -> list[Row]:
    """bench/conditional.py's rows alone: Health/Check, REST Get, REST Get answered 304,
    REST /readyz."""
    demo = basic_authorization(*DEMO_CREDENTIALS)
    health = Load(f"{report.HEALTH} gRPC Health/Check", HEALTH)
    return conditional.run(workdir, rest_service,
                           lambda server: measure_grpc(server, [health], demo)[0],
                           measure_rest, demo)  # fmt: skip


def run_all(workdir: Path) -> tuple[list[Row], list[memory.Footprint]]:
    """Every row on the small databases, and the footprints of the memory row."""
    sqlite_path = workdir / "conversations.db"
    sqlite_url = f"sqlite:///{sqlite_path}"
    # `serve --demo` gives a fresh embedded database the demo organisation and its demo key.
    demo = basic_authorization(*DEMO_CREDENTIALS)
    rows, conversation_id, voted = _sqlite_rows(workdir, sqlite_url, demo)
    rows += _postgres_rows(workdir)
    rows += _processes_rows(workdir, sqlite_url, demo)
    rows += _rest_rows(workdir, sqlite_url, conversation_id, voted, demo)
    rows += _peer_rows(workdir, sqlite_path)
    # Its own database: the 200,000 rows slow no other row.
    memory_url = f"sqlite:///{workdir}/memory.db"
    with service(workdir, memory_url) as server:
        row, footprints = measure_memory(server, demo, memory_url)
    rows.append(row)
    return sorted(rows, key=lambda row: row.number), footprints


def _sqlite_rows(workdir: Path, sqlite_url: str, demo: str) -> tuple[list[Row], int, int]:
    """The gRPC rows on SQLite beside the ceiling, the flooded Get, the reads without the
    read cache; and the conversation the reads read and the one the votes vote on."""
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
    rows += _uncached_rows(workdir, sqlite_url, conversation_id, demo)
    return rows, conversation_id, voted


def _uncached_rows(workdir: Path, sqlite_url: str, conversation_id: int, demo: str) -> list[Row]:
    """Get and List read from the database at every call, as after each write to their
    product: a server with no read cache."""
    with service(workdir, sqlite_url, read_cache=False) as server:
        return measure_grpc(
            server,
            [Load(f"{report.GET_UNCACHED} gRPC Get, SQLite, no read cache",
                  get_call(conversation_id)),
             Load(f"{report.LIST_UNCACHED} gRPC List first page, SQLite, no read cache",
                  list_call(ANSWERED_SKU))],
            demo,
        )  # fmt: skip


def _postgres_rows(workdir: Path) -> list[Row]:
    """Create and Vote on a fresh PostgreSQL database."""
    with postgres_database() as (postgres_url, key), service(workdir, postgres_url) as server:
        voted_postgres = voted_conversation(postgres_url)
        return measure_grpc(
            server,
            [
                Load(f"{report.CREATE_POSTGRES} gRPC Create, PostgreSQL", CREATE,
                     rows_of(postgres_url)),
                Load(f"{report.VOTE_POSTGRES} gRPC Vote, PostgreSQL", vote_call(voted_postgres),
                     helpful_votes(postgres_url, voted_postgres)),
            ],
            key,
        )  # fmt: skip


def _processes_rows(workdir: Path, sqlite_url: str, demo: str) -> list[Row]:
    """Every core: two server processes on the one port, on each database."""
    rows: list[Row] = []
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
    return rows


def _rest_rows(
    workdir: Path, sqlite_url: str, conversation_id: int, voted: int, demo: str
) -> list[Row]:
    """The REST rows through Envoy on SQLite, and the API explorer's page."""
    with rest_service(workdir, sqlite_url) as server:
        base = server.base_url
        rows = [
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
    return rows


def _peer_rows(workdir: Path, sqlite_path: Path) -> list[Row]:
    """The two FastAPI peers' creates on SQLite."""
    sqlite_url = f"sqlite:///{sqlite_path}"
    rows: list[Row] = []
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
    return rows


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
    rows += _uncached_rows(workdir, sqlite_url, conversation_id, demo)
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
