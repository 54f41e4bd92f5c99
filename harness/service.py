"""Run the real `conversation-service` as a child process, bound to 127.0.0.1 only."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.support import SERVICE, basic_authorization

# The request id of the health checks that wait for `serve` to be ready: their access lines.
WAITING = (("x-request-id", "wait-until-serving"),)

# The key `serve --demo` creates with the demo organisation on a database without any.
DEMO_CREDENTIALS = ("demo", "demo-secret")
DEMO_AUTHORIZATION = basic_authorization(*DEMO_CREDENTIALS)


class ServiceProcess:
    """`conversation-service serve` (the venv's, or `command`) on a free port; stopped by its
    PID, never by name."""

    def __init__(
        self,
        workdir: Path,
        extra_args: Sequence[str] = (),
        *,
        rest: bool = False,
        demo: bool = False,
        command: str = SERVICE,
        **env: str,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.http_address = f"127.0.0.1:{free_port()}" if rest else None
        rest_args = ["--http-address", self.http_address] if self.http_address else ["--no-rest"]
        rest_args += ["--demo"] if demo else []
        self.log_path = workdir / f"serve-{self.port}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [command, "serve", "--grpc-address", self.address, *rest_args, *extra_args],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"serve exited early:\n{self.log()}")
                try:
                    response = health.Check(
                        health_pb2.HealthCheckRequest(), timeout=1, metadata=WAITING
                    )
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"serve did not become healthy in {timeout}s:\n{self.log()}")

    @property
    def base_url(self) -> str:
        assert self.http_address, "started without REST"
        return f"http://{self.http_address}"

    def log(self, since: int = 0) -> str:
        """The log, from character `since` on (a length of an earlier log())."""
        return self.log_path.read_text()[since:]

    def wait_for_log(self, pattern: str, *, since: int = 0, timeout: float = 30) -> re.Match[str]:
        """The first match of a regular expression in the log from `since` on, once lines
        reach it (the access log's in batches); fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log(since))
            if found:
                return found
            time.sleep(0.1)  # polling the log file
        raise AssertionError(f"{pattern!r} not logged in {timeout} s:\n{self.log(since)}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit code; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        try:
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
