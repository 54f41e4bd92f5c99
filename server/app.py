"""Assembles the gRPC server (service, health, reflection, interceptors) and runs it."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import tempfile
import time
from collections.abc import Coroutine, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server import logs, metrics
from server.api.auth import AuthInterceptor
from server.api.decoding import DecodingInterceptor
from server.api.draining import Draining
from server.api.interceptors import InterceptedServer
from server.api.largest import largest
from server.api.limits import ConcurrencyLimit
from server.api.observers import AccessLogInterceptor, CallObservers, traceparent_trace_id
from server.api.reflection import enable_documented_reflection
from server.api.servicer import SERVICE_NAME, ConversationService
from server.api.span_attributes import SpanAttributesInterceptor
from server.config import Config
from server.logs import access_log
from server.package_data import DESCRIPTOR_SET
from server.rest.envoy import UNIX_PREFIX, EnvoyFailed, Listener, SupervisedEnvoy, split_address
from server.service.authentication import Authenticator
from server.service.organisations import seed_demo
from server.signals import stop_requested_async
from server.storage.health import DatabaseHealthWatcher
from server.storage.store import Store
from server.tracing import Tracing, current_trace_id, start_tracing

log = logging.getLogger(__name__)

Result = TypeVar("Result")

# The largest message the service sends: the largest response of the contract
# (server/api/largest.py), or a reflection answer (descriptors).
MAX_SEND_BYTES = max(4 * 1024 * 1024, largest().grpc_bytes)
# Request metadata a call may carry: above what Envoy passes on (16 KiB of headers, at most
# 100 of them, each counted 32 bytes more by HTTP/2), so that Envoy answers larger ones (431).
MAX_METADATA_BYTES = 32 * 1024
# Concurrent calls (HTTP/2 streams) one connection may open. Well above what one client
# keeps in flight: grpc counts a stream until both ends have closed it, so a client that
# reuses its streams at once (64 threads on one channel) was refused at a limit of 100.
# --max-concurrent-calls bounds the calls of all connections together.
MAX_STREAMS_PER_CONNECTION = 1000
# Seconds of the grace period kept for answering the calls held while draining.
RELEASE_SECONDS = 0.5


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    # Where the local Envoy connects: the port itself on loopback, or with TLS
    # on it, a plaintext port on 127.0.0.1 that only this machine reaches.
    local_address: str
    background: asyncio.Future[tuple[None, None]]  # revocations, the queue's gauges
    draining: Draining

    async def mark_serving(self, serving: bool = True) -> None:
        """Report SERVING (or NOT_SERVING): every part is ready (or the database is down)."""
        statuses = health_pb2.HealthCheckResponse
        status = statuses.SERVING if serving else statuses.NOT_SERVING
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, let in-flight calls finish within `grace` while new ones are
        held, stop taking calls, and answer those held UNAVAILABLE (Draining)."""
        await self.health.enter_graceful_shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.draining.hold(max(0.0, grace - RELEASE_SECONDS))
        stopping = loop.create_task(self.server.stop(max(RELEASE_SECONDS, deadline - loop.time())))
        await asyncio.sleep(0)  # the server stops taking calls before the held ones end
        self.draining.release()
        await stopping
        self.background.cancel()
        await asyncio.gather(self.background, return_exceptions=True)  # its end, read


async def start_server(
    config: Config,
    store: Store,
    tracing: Tracing | None = None,
    *,
    local_address: str | None = None,
    shared_port: bool = False,
) -> RunningServer:
    """Start serving on config.grpc_address, in the running event loop; the store's
    database must be migrated. With `tracing`, every call but health checks is a span.

    Every call is served on the event loop; what waits on the database waits in
    other threads (the group commit's writer, the loop's default executor).
    Health reports NOT_SERVING until mark_serving().

    With `local_address` (unix:PATH, in a directory of this user's alone), the
    local Envoy reaches the server, and it alone, in plaintext there: a call on it
    comes from Envoy, which names its client in `x-forwarded-for`. With
    `shared_port`, the server is one of `serve --processes N`: it shares its port
    with the others (SO_REUSEPORT).
    """
    store.moderation.prepare_screening()  # before serving, not on the first create
    authenticator = Authenticator(
        store,
        config.rate_limit,
        config.rate_burst,
        failure_rate=config.failed_auth_rate,
        failure_burst=config.failed_auth_burst,
    )
    server = grpc.aio.server(
        # With tracing, OpenTelemetry's span of each call is outermost: every wrapper runs in it.
        interceptors=None if tracing is None else [tracing.server_interceptor()],
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
            ("grpc.max_allowed_incoming_connections", config.max_connections),
            # Without this a second server on the same port starts silently;
            # the processes of one `serve` share theirs on purpose.
            ("grpc.so_reuseport", 1 if shared_port else 0),
        ],
    )
    draining = Draining(f"/{SERVICE_NAME}/")
    # Every handler registered through `intercepted` is wrapped once, here, by each of these.
    intercepted = InterceptedServer(
        server,
        [
            *([] if tracing is None else [SpanAttributesInterceptor(f"/{SERVICE_NAME}/")]),
            CallObservers(
                AccessLogInterceptor(
                    traceparent_trace_id if tracing is None else current_trace_id,
                    logs.access_writer(),
                ),
                metrics.MetricsInterceptor(),
            ),
            # Inside the observers, as the limit is: the calls it answers are logged too.
            draining,
            # Inside the observers, so that each refusal is logged and counted as a call.
            ConcurrencyLimit(
                config.max_concurrent_calls, config.max_streams, metrics.count_grpc_refusal
            ),
            AuthInterceptor(
                authenticator,
                f"/{SERVICE_NAME}/",
                config.failed_auth_delay,
                # Half the calls at once at most: the rest stay for those with keys.
                max_delayed=config.max_concurrent_calls // 2,
            ),
            DecodingInterceptor(),  # last: the others keep its decoder
        ],
    )
    registrar = intercepted.registrar
    pb_grpc.add_ConversationServiceServicer_to_server(ConversationService(store), registrar)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    if config.reflection:
        enable_documented_reflection(
            registrar,
            (SERVICE_NAME, health.SERVICE_NAME),
            DESCRIPTOR_SET,
            health_pb2.DESCRIPTOR,
            reflection_pb2.DESCRIPTOR,
        )
    credentials = _server_credentials(config)
    if credentials is None:
        port = server.add_insecure_port(config.grpc_address)
    else:
        port = server.add_secure_port(config.grpc_address, credentials)
    if local_address is not None:
        server.add_insecure_port(local_address)
    else:
        local_address = _loopback_address(config.grpc_address, port)
    await server.start()
    checks = authenticator.keep_checking_revocations()
    watches = asyncio.gather(checks, metrics.keep_measuring_queue(store))
    return RunningServer(server, health_servicer, port, local_address, watches, draining)


def run_event_loop(main: Coroutine[Any, Any, Result]) -> Result:
    """Run `main` on uvloop's event loop, as every server process does: grpc.aio does its
    per-call work on the loop, and uvloop's, in C, answers about a fifth more calls a
    second than asyncio's own."""
    return uvloop.run(main)


def freeze_startup_objects() -> None:
    """Leave what the process has made by now (modules, descriptors, the server) out of
    garbage collection: it lives as long as the process, and the collector would scan
    it again at every full collection. It gives about 5 % more calls a second."""
    gc.freeze()


def _server_credentials(config: Config) -> grpc.ServerCredentials | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def open_store(config: Config, tracing: Tracing | None = None) -> Store:
    """The Store of config's database. With `tracing`, the calls' waits on it are spans."""
    return Store.open(
        config.database_url,
        sqlite_synchronous=config.sqlite_synchronous,
        timeout=config.database_timeout,
        on_unavailable=metrics.count_database_error,
        on_statement=metrics.count_database_statement,
        tracer=None if tracing is None else tracing.tracer("server.storage"),
        read_cache_mib=config.read_cache_mib,
    )


def prepare_database(config: Config, tracing: Tracing | None = None) -> Store:
    """Open the database, apply pending migrations, and, when asked (--demo), seed the demo
    organisation and its key. With `tracing`, the calls' waits on the database are spans."""
    store = open_store(config, tracing)
    applied = store.migrate()
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    demo_key = seed_demo(store) if config.demo else None
    if demo_key is not None:
        log.info(
            "created the demo organisation %s and its demo API key: "
            "curl -u %s:%s ... or grpcurl -H 'authorization: Basic %s' ...",
            ", ".join(sorted(demo_key.organisations)),
            demo_key.key_id,
            demo_key.secret,
            base64.b64encode(f"{demo_key.key_id}:{demo_key.secret}".encode()).decode(),
        )
    return store


def _loopback_address(grpc_address: str, port: int) -> str:
    """Where this machine reaches the gRPC server: loopback when it listens on every interface."""
    host, _ = split_address(grpc_address)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_rest_proxy(config: Config, upstreams: Sequence[str]) -> SupervisedEnvoy:
    """Envoy in front of the gRPC server (or its processes), started again whenever it dies."""
    listener = Listener(
        config.http_address,
        max_request_bytes=config.max_request_bytes,
        request_timeout=config.http_request_timeout,
        tls_cert=config.http_tls_cert,
        tls_key=config.http_tls_key,
        cors_origins=config.cors_origin,
    )
    proxy = SupervisedEnvoy(
        listener,
        upstreams,
        workers=config.envoy_workers,
        on_restart=metrics.count_envoy_restart,
        on_refusal=log_envoy_refusal,
        otlp_endpoint=config.otlp_endpoint,
        log_level=config.log_level,
        log_format=config.log_format,
    )
    proxy.start()
    return proxy


def log_envoy_refusal(entry: dict[str, Any]) -> None:
    """A request Envoy answered itself with an error: an access log line, and counted. A
    5xx (a response Envoy could not send on, such as one over its buffer) is a failure,
    logged as an error, although the service answered the call."""
    status = entry.get("status")
    level = logging.ERROR if isinstance(status, int) and status >= 500 else logging.INFO
    message = f"{entry.get('method')} {entry.get('path')} {status}"
    access_log.log(level, {"message": message, "event": "http_refused", **entry})
    metrics.count_envoy_refusal(str(entry.get("reason", "")), str(entry.get("status", "")))


def start_metrics(config: Config, processes: Path | None = None) -> metrics.MetricsServer | None:
    """Serve Prometheus metrics when an address is configured: this process's, or with
    `processes` (their multiprocess directory) those of `serve --processes N`."""
    if config.metrics_address is None:
        return None
    server = metrics.start_metrics_server(config.metrics_address, processes)
    host, _ = metrics.metrics_host_port(config.metrics_address)
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server


async def drain(
    running: RunningServer, proxy: SupervisedEnvoy | None, grace: float, delay: float = 0.0
) -> None:
    """Finish the calls in flight, taking no new ones, within `grace` seconds.

    Health reports NOT_SERVING at once and calls are still served for `delay`
    seconds, so that load balancers that check health stop sending them. Then
    Envoy stops taking requests and its requests in flight are answered while
    the gRPC server still runs; then the gRPC server refuses new calls and
    gives its own calls in flight what is left of the grace period.
    """
    await running.health.enter_graceful_shutdown()
    await asyncio.sleep(delay)
    deadline = time.monotonic() + grace
    if proxy is not None:
        await asyncio.to_thread(proxy.drain, grace)
    await running.stop(max(0.0, deadline - time.monotonic()))


def serve(config: Config) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; returns the exit code.

    With REST on, Envoy runs beside the gRPC server; if it dies, it is started
    again (the gRPC server and its calls go on).
    """
    tracing = start_tracing(config)
    try:
        store = prepare_database(config, tracing)
        try:
            # Where the local Envoy reaches the gRPC server: no one else can connect there.
            with tempfile.TemporaryDirectory(prefix="conversation-service-") as sockets:
                local_address = f"{UNIX_PREFIX}{sockets}/grpc.sock" if config.rest else None
                return run_event_loop(_serve(config, store, tracing, local_address))
        finally:
            store.close()  # closed already, unless serving failed
    finally:
        if tracing is not None:
            tracing.shutdown()


async def _serve(
    config: Config, store: Store, tracing: Tracing | None, local_address: str | None
) -> int:
    loop = asyncio.get_running_loop()
    # Where database reads wait: keys and organisations not seen before.
    loop.set_default_executor(
        futures.ThreadPoolExecutor(config.workers, thread_name_prefix="database")
    )
    running = await start_server(config, store, tracing, local_address=local_address)
    freeze_startup_objects()
    if config.otlp_endpoint is not None:
        log.info("exporting traces over OTLP to %s", config.otlp_endpoint)
    log.info("gRPC serving on port %d (%s)", running.port, config.grpc_address)
    proxy: SupervisedEnvoy | None = None
    stopping = stop_requested_async()
    if config.rest:
        try:
            proxy = await asyncio.to_thread(start_rest_proxy, config, [running.local_address])
        except EnvoyFailed as error:
            log.error("REST proxy failed to start: %s", error)
            await running.stop(grace=0)
            return 1
        log.info(
            "REST serving on %s (Envoy gRPC-JSON transcoder, Envoy pid %d)",
            config.http_address,
            proxy.pid,
        )
    metrics_server = start_metrics(config)

    def report_database(available: bool) -> None:  # in the watcher's thread
        asyncio.run_coroutine_threadsafe(running.mark_serving(available), loop)
        metrics.report_database(available)

    watcher = DatabaseHealthWatcher(store.ping, report_database)
    await asyncio.to_thread(watcher.start)

    await stopping.wait()
    await asyncio.to_thread(watcher.stop)
    await drain(running, proxy, config.grace_period, config.drain_delay)
    if proxy is not None:
        await asyncio.to_thread(proxy.stop)
    # Calls cut off by the grace period may have queued creates: write them.
    await asyncio.to_thread(store.close)
    if metrics_server is not None:
        metrics_server.stop()
    log.info("stopped")
    return 0
