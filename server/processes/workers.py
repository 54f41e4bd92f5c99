"""`serve --processes N`: N gRPC server processes on one port, supervised by `serve`.

grpc.aio runs all of a process's Python on one event loop, so one process uses one
core. Here N processes (processes/worker.py) each run a gRPC server on the same port
with SO_REUSEPORT, as grpc's multiprocessing example does: the kernel spreads the
port's connections among them. Each is started as a new interpreter, before any
gRPC object exists in it, and has its own Store, writer, caches and rate limits.
This process applies the migrations before they start, runs the one Envoy, which
reaches each process on a unix socket of its own (so it balances REST calls over
them and checks each one's health), serves their metrics together, starts a
process again when it exits, and on SIGTERM or SIGINT drains Envoy, then them.
"""

from __future__ import annotations

import asyncio
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

from server import metrics, serving
from server.addresses import UNIX_PREFIX, join_address, split_address
from server.app import prepare_database, run_event_loop
from server.config import Config
from server.processes.protocol import (
    Assignment,
    Command,
    Drain,
    ProtocolError,
    Serve,
    Stop,
    receive_ready,
)
from server.processes.worker import name_the_process_in_log_lines
from server.signals import stop_requested, stop_requested_async
from server.supervisor import StartFailed, SupervisedProcess

log = logging.getLogger(__name__)

# Seconds a server process has to start serving (an interpreter, imports, the database).
READY_TIMEOUT = 30.0
# Seconds a server process has to exit after its grace period: the creates still
# queued are written then, each batch bounded by the database timeout.
EXIT_MARGIN = 15.0


class ServerProcess(SupervisedProcess):
    """One of the N server processes, started again whenever it exits, until drain().

    Its supervising thread starts it, gives it its Assignment, waits until it is
    Ready, tells it the latest command of `serve` (Serve, Drain), and waits for its exit.
    """

    def __init__(
        self,
        number: int,
        config: Config,
        local_address: str,
        env: dict[str, str],
        on_exit: Callable[[int], None],
    ) -> None:
        super().__init__(f"server-process-{number}", metrics.count_process_restart)
        self.number = number
        self.local_address = local_address
        self._config = config
        self._env = env
        self._on_exit = on_exit  # told the pid of every process that has exited
        self._command: Command | None = None  # the latest, for the processes started after it
        self._control: Connection | None = None  # while the process serves

    @property
    def name(self) -> str:
        return f"server process {self.number} (pid {self.pid})"

    def tell(self, command: Command) -> None:
        """Tell the process (and the ones started after it) `command`."""
        with self._lock:
            self._command = command
            if self._control is not None:
                with contextlib.suppress(OSError):
                    self._control.send(command)

    def drain(self) -> None:
        """Report NOT_SERVING from now on, and start no process again."""
        self.stop_supervising()
        self.tell(Drain())

    def stop(self, grace: float) -> None:
        """Let the calls in flight finish within `grace` s, then exit (see join_exit())."""
        self.stop_supervising()
        self.tell(Stop(grace))
        with self._lock:
            if self._control is None and self.process is not None:
                self.process.terminate()  # not serving yet

    def join_exit(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for the exit, then kill; the exit code (None: killed)."""
        self.join(timeout)
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            log.error("server process %d (pid %d) did not exit; killing it", self.number, self.pid)
            process.kill()
            process.wait()
            self.join()
            return None
        return process.returncode

    def _start(self, again: bool) -> subprocess.Popen[bytes]:
        ours, theirs = socket.socketpair()
        with theirs:
            try:
                process = self._spawn(
                    [sys.executable, "-m", "server.processes.worker", str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    # Its own session: a Ctrl-C in the terminal reaches `serve` alone,
                    # which then stops every process in order.
                    start_new_session=True,
                )
            except OSError as error:
                ours.close()
                raise StartFailed(f"not started: {error}") from error
            except StartFailed:
                ours.close()
                raise
        control = Connection(ours.detach())
        try:
            self._wait_ready(control, process)
        except StartFailed:
            control.close()
            if process.poll() is None:
                process.kill()
            process.wait()
            self._on_exit(process.pid)
            raise
        if again:
            log.info("server process %d started again (pid %d)", self.number, process.pid)
        return process

    def _wait_ready(self, control: Connection, process: subprocess.Popen[bytes]) -> None:
        """Give the process its Assignment and wait until it is Ready; then tell it the
        latest command. StartFailed if it exits or is not ready in time."""
        try:
            control.send(Assignment(self._config, self.number, self.local_address))
            if control.poll(READY_TIMEOUT):
                receive_ready(control)
            else:
                raise StartFailed(f"not serving within {READY_TIMEOUT:g} s")
        except (OSError, EOFError, ProtocolError) as error:
            if process.poll() is None:
                process.kill()
            code = process.wait()
            raise StartFailed(f"exited with code {code} while starting") from error
        with self._lock:
            self._control = control
            if self._command is not None:
                with contextlib.suppress(OSError):
                    control.send(self._command)

    def _wait(self, process: subprocess.Popen[bytes]) -> int:
        try:
            return process.wait()
        finally:
            with self._lock:
                control, self._control = self._control, None
            if control is not None:
                control.close()
            self._on_exit(process.pid)


class ServerProcesses:
    """The N server processes of one `serve`, their unix sockets and metrics in `workdir`:
    the gRPC serving of the serve loop (serving.py)."""

    def __init__(self, config: Config, count: int, workdir: Path) -> None:
        self._config = config
        self._metrics_directory = workdir / "metrics"
        self._metrics_directory.mkdir()
        # prometheus_client's multiprocess mode, chosen when a process imports it.
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_directory)}
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
    def upstreams(self) -> list[str]:
        return [process.local_address for process in self.processes]

    @property
    def metrics_directory(self) -> Path:
        return self._metrics_directory

    async def start(self) -> None:
        await asyncio.to_thread(self._start)
        log.info(
            "gRPC serving on %s in %d processes (pids %s)",
            self._config.grpc_address,
            len(self.processes),
            ", ".join(str(process.pid) for process in self.processes),
        )

    async def report_serving(self) -> None:
        for process in self.processes:
            process.tell(Serve())

    async def report_draining(self) -> None:
        for process in self.processes:
            process.drain()

    async def stop(self, grace: float) -> bool:
        return await asyncio.to_thread(self._stop, grace)

    async def close(self) -> None:
        """Nothing: each process closes its own database as it exits."""

    def _start(self) -> None:
        """Start every process and wait until each serves; StartFailed if one does not."""
        for process in self.processes:
            process.start_supervising()
        for process in self.processes:
            try:
                process.wait_started()
            except StartFailed as error:
                raise StartFailed(f"server process {process.number}: {error}") from error

    def _stop(self, grace: float) -> bool:
        """Stop every process, giving their calls in flight `grace` s; True when all
        exited by themselves with code 0."""
        for process in self.processes:
            process.stop(grace)
        deadline = time.monotonic() + grace + EXIT_MARGIN
        codes = [
            process.join_exit(max(0.0, deadline - time.monotonic())) for process in self.processes
        ]
        return all(code == 0 for code in codes)

    def _forget(self, pid: int) -> None:
        metrics.forget_process(pid, self._metrics_directory)


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
    stopping = stop_requested()  # from now: a signal while the database is prepared counts
    try:
        with shared_port(config.grpc_address) as grpc_address:
            config = replace(config, grpc_address=grpc_address)
            prepare_database(config).close()  # migrations and the demo key, once
            workdir = Path(tempfile.mkdtemp(prefix="conversation-serve-"))
            try:
                processes = ServerProcesses(config, count, workdir)
                return run_event_loop(_serve(config, processes, stopping))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    except OSError as error:
        log.error("cannot serve gRPC on %s: %s", config.grpc_address, error)
        return 1


async def _serve(config: Config, processes: ServerProcesses, early: threading.Event) -> int:
    stopping = stop_requested_async()
    if early.is_set():
        stopping.set()
    return await serving.serve(config, processes, stopping)
