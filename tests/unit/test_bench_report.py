"""The bench's verdicts: each ratio against its target and the ceiling, p99 / p50 on every
row, and the memory row's RSS of a process and its children."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import memory, report
from bench.load import Result
from bench.memory import Footprint
from bench.report import Row


def result(per_second: float, p50_ms: float = 2.0, p99_ms: float = 4.0) -> Result:
    return Result(int(per_second), int(per_second), 1.0, p50_ms, p99_ms)


def every_row(per_second: float) -> dict[int, Row]:
    return {n: Row(f"{n} row", result(per_second)) for n in range(report.CREATE_MEMORY + 1)}


def ratio_line(text: str, name: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_a_ratio_below_its_target_is_missed_and_read_against_the_ceiling() -> None:
    rows = every_row(1000)
    rows[report.CEILING] = Row("0 ceiling", result(4000))
    rows[report.VOTE_SQLITE] = Row("11 vote", result(400))

    text, met = report.ratios(list(rows.values()))

    assert ratio_line(text, "gRPC Vote / Create, SQLite") == ["0.40", ">= 0.5", "False", "0.10"]
    assert ratio_line(text, "gRPC Create SQLite / Health") == ["1.00", ">= 0.6", "True", "0.25"]
    assert not met


def test_every_target_met_when_each_ratio_and_spread_is() -> None:
    rows = every_row(1000)
    rows[report.CREATE_REST] = Row("4 REST create", result(2000))
    rows[report.NAIVE_PEER] = Row("5 naive peer", result(400))

    assert report.ratios(list(rows.values()))[1]


def test_a_wide_spread_on_any_row_misses() -> None:
    rows = every_row(1000)
    rows[report.STRONG_PEER] = Row("10 strong peer", result(1000, p50_ms=1.0, p99_ms=4.5))

    text, met = report.ratios(list(rows.values()))

    assert ratio_line(text, "p99 / p50, 10 strong peer")[:3] == ["4.50", "<= 4", "False"]
    assert not met


def test_memory_is_flat_within_ten_percent() -> None:
    assert Footprint(1, "serve", 100_000, 109_000).flat
    assert Footprint(1, "serve", 100_000, 91_000).flat
    assert not Footprint(1, "serve", 100_000, 111_000).flat
    text, met = report.memory_table(10, 1.0, [Footprint(1, "serve", 102_400, 112_640)])
    assert "| serve | 1 | 100.0 | 110.0 | +10.0% | True |" in text
    assert met


def test_the_memory_row_reads_a_process_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids = memory.process_tree(os.getpid())
        assert pids[0] == os.getpid()
        assert child.pid in pids
        assert memory.rss_kib(child.pid) > 0
    finally:
        child.terminate()
        child.wait(timeout=30)
