"""The one supervisor of child processes (Envoy, the server processes): each runs under a
thread of its own, which starts it again whenever it exits, after a growing delay."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

# Seconds between a process's death and its next start: doubled at each start in a row,
# up to the maximum; back to the first once the process has run for RESTART_RESET seconds.
RESTART_DELAYS = (0.1, 5.0)
RESTART_RESET = 30.0


class RestartBackoff:
    """The delays before each start of one supervised process."""

    def __init__(self) -> None:
        self._next = RESTART_DELAYS[0]

    def ran_for(self, seconds: float) -> None:
        """The process ran `seconds` before it died: a long run starts the delays over."""
        if seconds > RESTART_RESET:
            self._next = RESTART_DELAYS[0]

    def next_delay(self) -> float:
        """The wait before the next start; the one after it is twice as long (at most the
        maximum)."""
        delay = self._next
        self._next = min(2 * delay, RESTART_DELAYS[1])
        return delay


class StartFailed(RuntimeError):
    """A child process did not start, or was not ready in time."""


class SupervisedProcess:
    """A child process started again whenever it exits, until stop_supervising().

    A subclass says how to start the process and wait until it is ready (`_start`),
    and may add to waiting for its exit (`_wait`). The thread that supervises spawns
    every process: a parent-death signal follows the thread that spawned the child.
    """

    def __init__(self, thread_name: str, on_restart: Callable[[int], None]) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.failure: StartFailed | None = None  # the first start's
        self._on_restart = on_restart  # told the exit code of each death
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=thread_name, daemon=True)

    @property
    def name(self) -> str:
        """The process as the supervisor's log lines name it."""
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start_supervising(self) -> None:
        """Start the process and supervising it (see wait_started())."""
        self._thread.start()

    def wait_started(self) -> None:
        """Until the first process is ready; StartFailed if it is not."""
        self._started.wait()
        if self.failure is not None:
            raise self.failure

    def stop_supervising(self) -> subprocess.Popen[bytes] | None:
        """Start no process again; the process running now, if any."""
        with self._lock:
            self._stopping.set()
            return self.process

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _start(self, again: bool) -> subprocess.Popen[bytes]:
        """Start the process (through _spawn) and wait until it is ready; StartFailed if
        it is not. `again`: it replaces one that exited."""
        raise NotImplementedError

    def _wait(self, process: subprocess.Popen[bytes]) -> int:
        """Wait for the process's exit; its exit code."""
        return process.wait()

    def _spawn(self, args: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
        """subprocess.Popen(args, **options), unless the supervisor is stopping."""
        with self._lock:
            if self._stopping.is_set():
                raise StartFailed("stopping")
            self.process = subprocess.Popen(args, **options)
            return self.process

    def _supervise(self) -> None:
        try:
            process = self._start(again=False)
        except StartFailed as error:
            self.failure = error
            self._started.set()
            return
        self._started.set()
        backoff = RestartBackoff()
        while True:
            started = time.monotonic()
            code = self._wait(process)
            if self._stopping.is_set():
                return
            backoff.ran_for(time.monotonic() - started)
            delay = backoff.next_delay()
            log.error("%s exited with code %s; starting it again in %.1f s", self.name, code, delay)
            self._on_restart(code)
            while not self._stopping.wait(delay):
                try:
                    process = self._start(again=True)
                    break
                except StartFailed as error:
                    if self._stopping.is_set():
                        return
                    delay = backoff.next_delay()
                    log.error(
                        "%s did not start again: %s; next try in %.1f s", self.name, error, delay
                    )
            else:
                return
