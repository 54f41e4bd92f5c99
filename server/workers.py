"""`serve --processes N`: N gRPC server processes on one port, supervised by `serve`.

grpc.aio runs all of a process's Python on one event loop, so one process uses one
core. Here N processes (server.worker) each run a gRPC server on the same port
with SO_REUSEPORT, as grpc's multiprocessing example does: the kernel spreads the
port's connections among them. Each is started as a new interpreter, before any
gRPC object exists in it, and has its own Store, writer, caches and rate limits.
This process applies the migrations before they start, runs the one Envoy, which
reaches each process on a unix socket of its own (so it balances REST calls over
them and checks each one's health), serves their metrics together, starts a
process again when it exits, and on SIGTERM or SIGINT drains Envoy, then them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from server import metrics
from server.addresses import UNIX_PREFIX, join_address, split_address
from server.app import prepare_database, start_metrics, start_rest_proxy
from server.config import Config
from server.rest.envoy import EnvoyFailed, SupervisedEnvoy
from server.restarts import RestartBackoff
from server.signals import stop_requested
from server.worker import DRAINING, READY, SERVING, STOP, name_the_process_in_log_lines

log = logging.getLogger(__name__)

# Seconds a server process has to start serving (an interpreter, imports, the database).
READY_TIMEOUT = 30.0
# Seconds a server process has to exit after its grace period: the creates still
# queued are written then, each batch bounded by the database timeout.
EXIT_MARGIN = 15.0


class ProcessesFailed(RuntimeError):
    """A server process did not start."""


class ServerProcess:
    """One of the N server processes, started again whenever it exits, until drain().

    A thread of its own starts it, waits until it serves, tells it the latest word of
    the supervisor (SERVING, DRAINING), waits for its exit, and starts it again
    after a delay that grows while it keeps dying, as Envoy's does.
    """

    def __init__(
        self,
        number: int,
        config: Config,
        local_address: str,
        env: dict[str, str],
        on_exit: Callable[[int], None],
    ) -> None:
        self.number = number
        self.local_address = local_address
        self._config = config
        self._env = env
        self._on_exit = on_exit  # told the pid of every process that has exited
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._started = threading.Event()
        self._word: Any = None  # the latest word for the process: SERVING, DRAINING, STOP
        self._control: Connection | None = None  # while the process serves
        self.process: subprocess.Popen[bytes] | None = None
        self.failure: str | None = None
        self._thread = threading.Thread(
            target=self._supervise, name=f"server-process-{number}", daemon=True
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self._thread.start()

    def wait_started(self) -> None:
        """Until the first process serves; ProcessesFailed if it did not."""
        self._started.wait()
        if self.failure is not None:
            raise ProcessesFailed(f"server process {self.number}: {self.failure}")

    def tell(self, word: Any) -> None:
        """Tell the process (and the ones started after it) `word`."""
        with self._lock:
            self._word = word
            if self._control is not None:
                with contextlib.suppress(OSError):
                    self._control.send(word)

    def drain(self) -> None:
        """Report NOT_SERVING from now on, and start no process again."""
        self._draining.set()
        self.tell(DRAINING)

    def stop(self, grace: float) -> None:
        """Let the calls in flight finish within `grace` s, then exit (see join())."""
        self._draining.set()
        self.tell((STOP, grace))
        with self._lock:
            if self._control is None and self.process is not None:
                self.process.terminate()  # not serving yet

    def join(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for the exit, then kill; the exit code (None: killed)."""
        self._thread.join(timeout)
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            log.error("server process %d (pid %d) did not exit; killing it", self.number, self.pid)
            process.kill()
            process.wait()
            self._thread.join()
            return None
        return process.returncode

    def _supervise(self) -> None:
        backoff = RestartBackoff()
        while True:
            started = time.monotonic()
            code = self._run_once()
            if self._draining.is_set():
                return
            if not self._started.is_set():  # the first start failed: serve gives up
                self.failure = self.failure or f"exited with code {code} while starting"
                self._started.set()
                return
            backoff.ran_for(time.monotonic() - started)
            delay = backoff.next_delay()
            log.error(
                "server process %d (pid %d) exited with code %s; starting it again in %.1f s",
                self.number,
                self.pid,
                code,
                delay,
            )
            metrics.count_process_restart(code)
            if self._draining.wait(delay):
                return

    def _run_once(self) -> int:
        """Start the process, wait until it serves and then until it exits; its exit code."""
        ours, theirs = socket.socketpair()
        with self._lock, theirs:
            if self._draining.is_set():
                ours.close()
                return 0
            try:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "server.worker", str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    # Its own session: a Ctrl-C in the terminal reaches `serve` alone,
                    # which then stops every process in order.
                    start_new_session=True,
                )
            except OSError as error:  # no process to wait for: as one that failed at once
                ours.close()
                self.failure = f"not started: {error}"
                return 1
        process = self.process
        control = Connection(ours.detach())
        try:
            if self._serves(control, process):
                code = process.wait()
            else:
                process.kill()
                code = process.wait()
        finally:
            with self._lock:
                self._control = None
            control.close()
            self._on_exit(process.pid)
        return code

    def _serves(self, control: Connection, process: subprocess.Popen[bytes]) -> bool:
        """Give the process its work and wait until it serves; then tell it the latest word."""
        try:
            control.send((self._config, self.number, self.local_address))
            ready = control.poll(READY_TIMEOUT) and control.recv() == READY
        except (OSError, EOFError):
            ready = False
        if not ready:
            if process.poll() is None:
                self.failure = f"not serving within {READY_TIMEOUT:g} s"
            return False
        with self._lock:
            self._control = control
            if self._word is not None:
                with contextlib.suppress(OSError):
                    control.send(self._word)
        if self._started.is_set():
            log.info("server process %d started again (pid %d)", self.number, process.pid)
        self._started.set()
        return True


class ServerProcesses:
    """The N server processes of one `serve`, their unix sockets and metrics in `workdir`."""

    def __init__(self, config: Config, count: int, workdir: Path) -> None:
        self.metrics_directory = workdir / "metrics"
        self.metrics_directory.mkdir()
        # prometheus_client's multiprocess mode, chosen when a process imports it.
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_directory)}
        self.processes = [
            ServerProcess(
                number,
                config,
                f"{UNIX_PREFIX}{workdir / f'process-{number}.sock'}",
                env,
                self._forget,
            )
            for number in range(1, count + 1)
        ]

    @property
    def local_addresses(self) -> list[str]:
        return [process.local_address for process in self.processes]

    def start(self) -> None:
        """Start every process and wait until each serves; ProcessesFailed if one does not."""
        for process in self.processes:
            process.start()
        for process in self.processes:
            process.wait_started()

    def tell(self, word: Any) -> None:
        for process in self.processes:
            process.tell(word)

    def drain(self) -> None:
        for process in self.processes:
            process.drain()

    def stop(self, grace: float) -> bool:
        """Stop every process, giving their calls in flight `grace` s; True when all
        exited by themselves with code 0."""
        for process in self.processes:
            process.stop(grace)
        deadline = time.monotonic() + grace + EXIT_MARGIN
        codes = [process.join(max(0.0, deadline - time.monotonic())) for process in self.processes]
        return all(code == 0 for code in codes)

    def _forget(self, pid: int) -> None:
        metrics.forget_process(pid, self.metrics_directory)


@contextlib.contextmanager
def shared_port(address: str) -> Iterator[str]:
    """`address` with its port (a free one for port 0), held for the server processes.

    A port something listens on already is an OSError, as it is for one process
    (another `serve` there would otherwise share it silently). The port is then
    held by a socket that does not listen, with SO_REUSEPORT, until the end.
    """
    host, port = split_address(address)
    family, kind, _, _, where = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(where)
        port = probe.getsockname()[1]
    with socket.socket(family, kind) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((where[0], port, *where[2:]))
        yield join_address(host, port)


def serve(config: Config, count: int) -> int:
    """Run `count` server processes on config's gRPC port and Envoy in front of them until
    SIGTERM or SIGINT, then drain all; returns the exit code."""
    name_the_process_in_log_lines(config)
    stopping = stop_requested()
    try:
        with shared_port(config.grpc_address) as grpc_address:
            config = replace(config, grpc_address=grpc_address)
            prepare_database(config).close()  # migrations and the demo key, once
            workdir = Path(tempfile.mkdtemp(prefix="conversation-serve-"))
            try:
                return _serve(config, ServerProcesses(config, count, workdir), stopping)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    except OSError as error:
        log.error("cannot serve gRPC on %s: %s", config.grpc_address, error)
        return 1


def _serve(config: Config, processes: ServerProcesses, stopping: threading.Event) -> int:
    try:
        processes.start()
    except ProcessesFailed as error:
        log.error("%s", error)
        processes.stop(grace=0)
        return 1
    log.info(
        "gRPC serving on %s in %d processes (pids %s)",
        config.grpc_address,
        len(processes.processes),
        ", ".join(str(process.pid) for process in processes.processes),
    )
    proxy: SupervisedEnvoy | None = None
    if config.rest:
        try:
            proxy = start_rest_proxy(config, processes.local_addresses)
        except EnvoyFailed as error:
            log.error("REST proxy failed to start: %s", error)
            processes.stop(grace=0)
            return 1
        log.info(
            "REST serving on %s (Envoy gRPC-JSON transcoder, Envoy pid %d)",
            config.http_address,
            proxy.pid,
        )
    metrics_server = start_metrics(config, processes.metrics_directory)
    processes.tell(SERVING)
    stopping.wait()
    clean = _drain(config, processes, proxy)
    if proxy is not None:
        proxy.stop()
    if metrics_server is not None:
        metrics_server.stop()
    log.info("stopped")
    return 0 if clean else 1


def _drain(config: Config, processes: ServerProcesses, proxy: SupervisedEnvoy | None) -> bool:
    """As one process drains (app.drain): NOT_SERVING at once, serving on for the drain
    delay, then Envoy's requests in flight finish, then the processes' calls."""
    processes.drain()
    time.sleep(config.drain_delay)
    deadline = time.monotonic() + config.grace_period
    if proxy is not None:
        proxy.drain(config.grace_period)
    return processes.stop(max(0.0, deadline - time.monotonic()))
