"""The bench's tables: each row measured, the ratios against their targets, the memory."""

from __future__ import annotations

from dataclasses import dataclass

from bench.load import Result
from bench.memory import FLAT, Footprint

# Row numbers the ratios name.
CEILING, HEALTH, CREATE_SQLITE, CREATE_POSTGRES, CREATE_REST, NAIVE_PEER = range(6)
GET, LIST, GET_REST, LIST_REST, STRONG_PEER = range(6, 11)
VOTE_SQLITE, VOTE_POSTGRES, VOTE_REST, CREATE_MEMORY = range(11, 15)
# serve --processes 2: two server processes on the one port.
CREATE_SQLITE_2, CREATE_POSTGRES_2 = range(15, 17)
# The API explorer's page, which Envoy serves.
DOCS_PAGE = 17
# Get and the first List page served with --read-cache-mib 0: read from the database
# every time.
LIST_UNCACHED, GET_UNCACHED = 18, 19
# Get while another client floods the gRPC port with calls of a key that does not exist.
FLOODED_GET = 20
# A Detail over REST with If-None-Match naming its current ETag: 304 Not Modified.
NOT_MODIFIED_REST = 21
# GET /readyz through the same Envoy: one gRPC Health/Check behind an HTTP request, the
# 304's hops without its work.
READY_REST = 22
# An answer created on one conversation, over and over (`bench.run writes` only).
ANSWER_SQLITE, ANSWER_POSTGRES = 23, 24
# The most p99 may be, in times p50, on every row.
SPREAD = 4

# (ratio, numerator row, denominator row, target or None)
RATIOS: list[tuple[str, int, int, float | None]] = [
    ("gRPC Health/Check / ceiling", HEALTH, CEILING, 0.8),
    ("gRPC Create SQLite / ceiling", CREATE_SQLITE, CEILING, 0.5),
    ("gRPC Create PostgreSQL / ceiling", CREATE_POSTGRES, CEILING, 0.4),
    ("gRPC Create SQLite / Health", CREATE_SQLITE, HEALTH, 0.6),
    ("gRPC Create PostgreSQL / Health", CREATE_POSTGRES, HEALTH, 0.4),
    ("REST Create via Envoy / strong peer", CREATE_REST, STRONG_PEER, 1.5),
    ("gRPC Create SQLite / strong peer", CREATE_SQLITE, STRONG_PEER, None),
    ("gRPC Create SQLite / naive peer", CREATE_SQLITE, NAIVE_PEER, 2.5),
    ("REST Create via Envoy / naive peer", CREATE_REST, NAIVE_PEER, 2.0),
    ("gRPC Vote / Create, SQLite", VOTE_SQLITE, CREATE_SQLITE, 0.5),
    ("gRPC Vote / Create, PostgreSQL", VOTE_POSTGRES, CREATE_POSTGRES, 0.5),
    ("REST Vote / Create via Envoy, SQLite", VOTE_REST, CREATE_REST, 0.5),
    ("gRPC Get / Health", GET, HEALTH, 0.6),
    ("gRPC List first page / Health", LIST, HEALTH, 0.3),
    ("gRPC Get beside a flood of bad credentials / Get", FLOODED_GET, GET, 0.5),
    ("gRPC Get, no read cache / Health", GET_UNCACHED, HEALTH, None),
    ("gRPC List first page, no read cache / Health", LIST_UNCACHED, HEALTH, None),
    ("REST Get via Envoy / Health", GET_REST, HEALTH, None),
    ("REST List first page via Envoy / Health", LIST_REST, HEALTH, None),
    ("REST Get answered 304 via Envoy / Health", NOT_MODIFIED_REST, HEALTH, 0.8),
    ("REST Get answered 304 / REST Get answered 200", NOT_MODIFIED_REST, GET_REST, None),
    ("REST Get answered 304 / REST /readyz", NOT_MODIFIED_REST, READY_REST, 0.8),
    ("gRPC Create SQLite, 2 processes / 1", CREATE_SQLITE_2, CREATE_SQLITE, None),
    ("gRPC Create PostgreSQL, 2 processes / 1", CREATE_POSTGRES_2, CREATE_POSTGRES, None),
]


@dataclass(frozen=True)
class Row:
    name: str
    result: Result | None  # None: not measured in this build
    # What the runs added that must equal their successes: rows stored by creates,
    # votes counted on the voted conversation; None where a run adds nothing.
    stored: int | None = None

    @property
    def number(self) -> int:
        return int(self.name.split()[0])

    @property
    def rows_match(self) -> bool:
        return self.result is None or self.stored is None or self.stored == self.result.succeeded


def table(rows: list[Row]) -> str:
    lines = [
        "| row | ok req/s | p50 ms | p99 ms | max ms | errors | stored = successes |",
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
    """Each ratio of RATIOS with its numerator against the ceiling too, then p99 / p50 of
    every row; and whether every target was met."""
    r = {row.number: row.result for row in rows}
    ceiling = r.get(CEILING)
    lines = [
        "| ratio | measured | target | met | numerator / ceiling |",
        "|---|---:|---:|---|---:|",
    ]
    ok = True
    for name, top, bottom, target in RATIOS:
        numerator, denominator = r.get(top), r.get(bottom)
        shown = "none" if target is None else f">= {target}"
        if numerator is None or denominator is None or not denominator.per_second:
            lines.append(f"| {name} | pending | {shown} | pending | |")
            continue
        value = numerator.per_second / denominator.per_second
        met = target is None or value >= target
        ok &= met
        against_ceiling = (
            f"{numerator.per_second / ceiling.per_second:.2f}" if ceiling and ceiling.per_second
            else "pending"
        )  # fmt: skip
        lines.append(
            f"| {name} | {value:.2f} | {shown} | {'n/a' if target is None else met} "
            f"| {against_ceiling} |"
        )
    for row in rows:
        result = row.result
        if result is not None and result.p50_ms:
            value = result.p99_ms / result.p50_ms
            ok &= value <= SPREAD
            lines.append(
                f"| p99 / p50, {row.name} | {value:.2f} | <= {SPREAD} | {value <= SPREAD} | |"
            )
    return "\n".join(lines), ok


def memory_table(creates: int, seconds: float, footprints: list[Footprint]) -> tuple[str, bool]:
    lines = [
        f"RSS after warm-up and after {creates:,} successful creates in {seconds:.0f} s:",
        "",
        f"| process | pid | RSS after warm-up MiB | RSS after MiB | change | met (within "
        f"{FLAT:.0%}) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for f in footprints:
        lines.append(
            f"| {f.name} | {f.pid} | {f.before_kib / 1024:,.1f} | {f.after_kib / 1024:,.1f} "
            f"| {f.change:+.1%} | {f.flat} |"
        )
    return "\n".join(lines), all(f.flat for f in footprints)
