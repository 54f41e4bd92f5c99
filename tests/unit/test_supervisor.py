"""The one supervisor of child processes (Envoy, a server process): started again when one
exits, after delays that grow while it keeps dying."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from server.supervisor import (
    RESTART_DELAYS,
    RESTART_RESET,
    RestartBackoff,
    StartFailed,
    SupervisedProcess,
)

SLEEPING = [sys.executable, "-c", "import time; time.sleep(60)"]


class Sleeper(SupervisedProcess):
    """A child that sleeps until killed; `failures` of its starts fail first, in order."""

    def __init__(self, failures: list[bool]) -> None:
        super().__init__("sleeper", on_restart=self.on_restart)
        self.failures = failures
        self.starts: queue.Queue[tuple[bool, int]] = queue.Queue()
        self.restart_codes: list[int] = []

    @property
    def name(self) -> str:
        return "sleeper"

    def on_restart(self, code: int) -> None:
        self.restart_codes.append(code)

    def _start(self, again: bool) -> subprocess.Popen[bytes]:
        if self.failures and self.failures.pop(0):
            raise StartFailed("not ready")
        process = self._spawn(SLEEPING)
        self.starts.put((again, process.pid))
        return process


@pytest.fixture
def supervised() -> Iterator[list[Sleeper]]:
    """The sleepers a test starts; each stopped, its child killed, at the end."""
    sleepers: list[Sleeper] = []
    yield sleepers
    for sleeper in sleepers:
        process = sleeper.stop_supervising()
        if process is not None and process.poll() is None:
            process.kill()
        sleeper.join(10)


def test_a_child_that_dies_is_started_again_and_its_death_counted(
    supervised: list[Sleeper], caplog: pytest.LogCaptureFixture
) -> None:
    sleeper = Sleeper([])
    supervised.append(sleeper)
    with caplog.at_level(logging.INFO, logger="server.supervisor"):
        sleeper.start_supervising()
        sleeper.wait_started()
        again, first = sleeper.starts.get(timeout=10)
        os.kill(first, signal.SIGKILL)
        restarted, second = sleeper.starts.get(timeout=10)

    assert (again, restarted) == (False, True)
    assert second != first and sleeper.pid == second
    assert sleeper.restart_codes == [-signal.SIGKILL]
    assert caplog.messages == ["sleeper exited with code -9; starting it again in 0.1 s"]


def test_a_first_start_that_fails_is_the_supervisors_failure(supervised: list[Sleeper]) -> None:
    sleeper = Sleeper([True])
    supervised.append(sleeper)
    sleeper.start_supervising()
    with pytest.raises(StartFailed, match="not ready"):
        sleeper.wait_started()
    assert sleeper.process is None


def test_a_restart_that_fails_is_tried_again_after_a_longer_delay(
    supervised: list[Sleeper], caplog: pytest.LogCaptureFixture
) -> None:
    sleeper = Sleeper([False, True])
    supervised.append(sleeper)
    with caplog.at_level(logging.INFO, logger="server.supervisor"):
        sleeper.start_supervising()
        sleeper.wait_started()
        _, first = sleeper.starts.get(timeout=10)
        os.kill(first, signal.SIGKILL)
        restarted, _ = sleeper.starts.get(timeout=10)

    assert restarted
    assert caplog.messages == [
        "sleeper exited with code -9; starting it again in 0.1 s",
        "sleeper did not start again: not ready; next try in 0.2 s",
    ]


def test_a_stopped_supervisor_starts_no_child_again(supervised: list[Sleeper]) -> None:
    sleeper = Sleeper([])
    supervised.append(sleeper)
    sleeper.start_supervising()
    sleeper.wait_started()
    process = sleeper.stop_supervising()
    assert process is not None
    process.kill()
    sleeper.join(10)

    assert sleeper.restart_codes == []
    assert sleeper.starts.qsize() == 1  # the first start alone


def test_delays_double_up_to_the_maximum_and_start_over_after_a_long_run() -> None:
    backoff = RestartBackoff()
    delays = []
    for _ in range(8):
        backoff.ran_for(1.0)
        delays.append(backoff.next_delay())

    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, RESTART_DELAYS[1], RESTART_DELAYS[1]]
    backoff.ran_for(RESTART_RESET + 1)
    assert backoff.next_delay() == RESTART_DELAYS[0]
