"""The service's memory under creates: the RSS of its processes after a warm-up and after
many creates in a row, each run bounded in count and in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench.load import Result

TARGET_CREATES = 200_000
# On a slow machine the target count does not fit: the run stops starting counted runs
# once the next one would end after this (the time it takes: docs/performance.md).
TIME_BOUND_SECONDS = 240
CHUNK_SECONDS = 10
# The target: each process's RSS after the creates within this fraction of it after warm-up.
FLAT = 0.10


@dataclass(frozen=True)
class Footprint:
    """One process's resident memory after warm-up and after the creates, in KiB."""

    pid: int
    name: str
    before_kib: int
    after_kib: int

    @property
    def change(self) -> float:
        return (self.after_kib - self.before_kib) / self.before_kib if self.before_kib else 0.0

    @property
    def flat(self) -> bool:
        return abs(self.change) <= FLAT


def rss_kib(pid: int) -> int:
    """VmRSS of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants: a server that runs workers is measured whole."""
    pids, found = [pid], 0
    while found < len(pids):
        for task in Path(f"/proc/{pids[found]}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += (int(child) for child in children if int(child) not in pids)
        found += 1
    return pids


def process_name(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def creates_in_a_row(
    pid: int, run: Callable[..., Result], per_second: float
) -> tuple[Result, list[Footprint]]:
    """Read the RSS of `pid` and its children, then `run(count=...)` until TARGET_CREATES
    were sent or TIME_BOUND_SECONDS is near, each run sized to about CHUNK_SECONDS at the
    rate of the one before (the warmed-up `per_second` first), and read it again. The
    result is that of the counted runs as one."""
    pids = process_tree(pid)
    before = {p: rss_kib(p) for p in pids}
    results: list[Result] = []
    sent, started = 0, time.monotonic()
    while sent < TARGET_CREATES:
        seconds_left = min(CHUNK_SECONDS, TIME_BOUND_SECONDS - (time.monotonic() - started))
        count = min(int(per_second * seconds_left), TARGET_CREATES - sent)
        if count < 100:
            break
        result = run(count=count)
        results.append(result)
        sent += result.requests
        per_second = result.requests / result.seconds if result.seconds else per_second
    footprints = [Footprint(p, process_name(p), before[p], rss_kib(p)) for p in pids]
    return load.merge(results), footprints
