"""Rows measured beside a neighbour: reads on a generated data set of their own (SQLite,
then PostgreSQL), then Create on a fresh database prepared with what a row measures beside
Create on one prepared without it; and their table.

bench/organisation.py and bench/moderation.py each give their data set, their reads and
their pair of creates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.dataset import Generated
from bench.load import Result, merge
from harness.databases import fresh_postgres


@dataclass(frozen=True)
class Measured:
    """One row's result, and the row it is compared with."""

    database: str
    name: str
    result: Result
    beside: str
    other: Result
    target: str
    met: bool | None


# Measures calls (name, method and request) on a server, taking turns; their results.
Measure = Callable[[Any, list[tuple[str, Any]], str], list[Result]]
# Starts `serve` on a database URL, with the read cache or without.
Serve = Callable[..., Any]
# The read rows of a database (its name and its data set's URL).
Reads = Callable[[Path, Serve, Measure, str, str], list[Measured]]


@dataclass(frozen=True)
class Creates:
    """Create on a fresh database prepared with what the row measures, beside Create on one
    prepared without it (target: at least `share` of its throughput)."""

    name: str
    beside: str
    share: float
    # Part of the fresh databases' file and database names.
    stem: str
    # Prepares a fresh database's URL, with what is measured or without: its key's
    # authorization.
    prepare: Callable[[str, bool], str]
    # Checks what a fresh database holds once measured.
    check: Callable[[str], None] = lambda url: None


def run(
    workdir: Path,
    serve: Serve,
    measure: Measure,
    create: Any,
    data: tuple[Generated, int],
    reads: Reads,
    creates: Creates,
) -> list[Measured]:
    """Every row on both databases: the reads on the data set (`data`: its kind and its
    number of conversations), then the creates."""
    generated, conversations = data
    measured: list[Measured] = []
    for database, url in (("SQLite", generated.sqlite(conversations)),
                          ("PostgreSQL", generated.postgres(conversations))):  # fmt: skip
        measured += reads(workdir, serve, measure, database, url)
    for database in ("SQLite", "PostgreSQL"):
        measured.append(_creates(workdir, serve, measure, database, create, creates))
    return measured


def _creates(
    workdir: Path, serve: Serve, measure: Measure, database: str, create: Any, creates: Creates
) -> Measured:
    """The two creates side by side: the two servers run at once and their measurements
    take turns."""
    results: dict[bool, list[Result]] = {True: [], False: []}
    with (
        _fresh(workdir, database, creates, True) as (with_url, with_key),
        _fresh(workdir, database, creates, False) as (without_url, without_key),
        serve(workdir, with_url) as measured,
        serve(workdir, without_url) as bare,
    ):
        for _ in range(2):
            results[False] += measure(bare, [(creates.beside, create)], without_key)
            results[True] += measure(measured, [(creates.name, create)], with_key)
        for url in (with_url, without_url):
            creates.check(url)
    with_it, without = merge(results[True]), merge(results[False])
    met = with_it.per_second >= creates.share * without.per_second
    return Measured(database, creates.name, with_it, creates.beside, without,
                    f">= {creates.share}x", met)  # fmt: skip


@contextlib.contextmanager
def _fresh(
    workdir: Path, database: str, creates: Creates, with_it: bool
) -> Iterator[tuple[str, str]]:
    """A fresh database prepared by `creates.prepare`: its URL and its key's authorization."""
    if database == "SQLite":
        url = f"sqlite:///{workdir}/{creates.stem}-{'with' if with_it else 'without'}.db"
        yield url, creates.prepare(url, with_it)
        return
    with fresh_postgres(f"bench_{creates.stem.replace('-', '_')}") as url:
        yield url, creates.prepare(url, with_it)


def table(measured: list[Measured]) -> tuple[str, bool]:
    lines = [
        "| database | call | ok req/s | p50 / p99 ms | beside | its req/s | its p50 / p99 ms "
        "| ratio (req/s) | target | met |",
        "|---|---|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for m in measured:
        a, b = m.result, m.other
        ratio = a.per_second / b.per_second if b.per_second else 0.0
        lines.append(
            f"| {m.database} | {m.name} | {a.per_second:,.0f} | {a.p50_ms:.2f} / {a.p99_ms:.2f} "
            f"| {m.beside} | {b.per_second:,.0f} | {b.p50_ms:.2f} / {b.p99_ms:.2f} "
            f"| {ratio:.2f} | {m.target} | {'' if m.met is None else m.met} |"
        )
    return "\n".join(lines), all(m.met is not False for m in measured)
