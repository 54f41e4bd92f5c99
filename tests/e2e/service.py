"""Run the real `conversation-service` as a child process, bound to 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import SERVICE

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


# The key `serve --demo` creates with the demo organisation on a database without any.
DEMO_CREDENTIALS = ("demo", "demo-secret")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
                    response = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
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

    def log(self) -> str:
        return self.log_path.read_text()

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


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    """One HTTP/1.1 request; error statuses are returned, not raised."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpResponse(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, _lower(error.headers), error.read())


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def grpcurl(
    address: str, *args: str, data: str | None = None, headers: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """grpcurl ADDRESS ARGS... in plaintext, with a JSON body and headers when given."""
    flags = ["-plaintext", *(["-d", data] if data is not None else [])]
    flags += [arg for header in headers for arg in ("-H", header)]
    return subprocess.run(
        [GRPCURL, *flags, address, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
