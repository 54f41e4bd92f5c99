"""Assembles the gRPC server (service, health, reflection, interceptors) and runs it in
this process: the one of `serve`, or a server process of `serve --processes N`."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import tempfile
from collections.abc import Coroutine
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server import logs, metrics, serving
from server.addresses import UNIX_PREFIX
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
from server.package_data import DESCRIPTOR_SET
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
        options=_server_options(config, shared_port),
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
    health_servicer = await _add_services(intercepted.registrar, store, config.reflection)
    port = _add_ports(server, config, local_address)
    await server.start()
    checks = authenticator.keep_checking_revocations()
    watches = asyncio.gather(checks, metrics.keep_measuring_queue(store))
    return RunningServer(server, health_servicer, port, watches, draining)


def _server_options(config: Config, shared_port: bool) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments: its limits, and whether it shares its port."""
    return [
        ("grpc.max_receive_message_length", config.max_request_bytes),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        ("grpc.max_allowed_incoming_connections", config.max_connections),
        # Without this a second server on the same port starts silently;
        # the processes of one `serve` share theirs on purpose.
        ("grpc.so_reuseport", 1 if shared_port else 0),
    ]


async def _add_services(
    registrar: grpc.aio.Server, store: Store, reflection: bool
) -> health.aio.HealthServicer:
    """ConversationService, health (NOT_SERVING for now) and, when asked, reflection."""
    pb_grpc.add_ConversationServiceServicer_to_server(ConversationService(store), registrar)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    if reflection:
        enable_documented_reflection(
            registrar,
            (SERVICE_NAME, health.SERVICE_NAME),
            DESCRIPTOR_SET,
            health_pb2.DESCRIPTOR,
            reflection_pb2.DESCRIPTOR,
        )
    return health_servicer


def _add_ports(server: grpc.aio.Server, config: Config, local_address: str | None) -> int:
    """Listen on config.grpc_address (with TLS when configured) and on `local_address`;
    the gRPC port."""
    credentials = _server_credentials(config)
    if credentials is None:
        port = server.add_insecure_port(config.grpc_address)
    else:
        port = server.add_secure_port(config.grpc_address, credentials)
    if local_address is not None:
        server.add_insecure_port(local_address)
    return port


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


class ServerInProcess:
    """The gRPC server of this process, as the serve loop (serving.py) runs it:
    the one process of `serve`, or server process `number` of `serve --processes N`.

    Health is SERVING when the serve loop (or the supervisor) says every part is up and
    this process's database probe succeeds; NOT_SERVING otherwise.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        tracing: Tracing | None,
        local_address: str | None,
        number: int | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._tracing = tracing
        self._local_address = local_address
        self._number = number
        self._running: RunningServer | None = None
        self._watcher: DatabaseHealthWatcher | None = None
        self._every_part_up = False
        self._database_up = False

    @property
    def upstreams(self) -> list[str]:
        return [] if self._local_address is None else [self._local_address]

    @property
    def metrics_directory(self) -> None:
        return None

    @property
    def running(self) -> RunningServer:
        assert self._running is not None
        return self._running

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Where database reads wait: keys and organisations not seen before.
        loop.set_default_executor(
            futures.ThreadPoolExecutor(self._config.workers, thread_name_prefix="database")
        )
        self._running = running = await start_server(
            self._config,
            self._store,
            self._tracing,
            local_address=self._local_address,
            shared_port=self._number is not None,
        )
        freeze_startup_objects()
        if self._number is None:
            log.info("gRPC serving on port %d (%s)", running.port, self._config.grpc_address)
        else:
            log.info(
                "server process %d serving on port %d and %s",
                self._number,
                running.port,
                self._local_address,
            )

        def report_database(available: bool) -> None:  # in the watcher's thread
            asyncio.run_coroutine_threadsafe(self._report_database(available), loop)
            metrics.report_database(available)

        self._watcher = DatabaseHealthWatcher(self._store.ping, report_database)
        await asyncio.to_thread(self._watcher.start)

    async def report_serving(self) -> None:
        self._every_part_up = True
        await self._report()

    async def report_draining(self) -> None:
        await self.running.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> bool:
        await self.running.stop(grace)
        return True

    async def close(self) -> None:
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
        await asyncio.to_thread(self._store.close)

    async def _report_database(self, up: bool) -> None:
        self._database_up = up
        await self._report()

    async def _report(self) -> None:
        await self.running.mark_serving(self._every_part_up and self._database_up)


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
                server = ServerInProcess(config, store, tracing, local_address)
                return run_event_loop(_serve(config, server))
        finally:
            store.close()  # closed already, unless serving failed
    finally:
        if tracing is not None:
            tracing.shutdown()


async def _serve(config: Config, server: ServerInProcess) -> int:
    stopping = stop_requested_async()
    if config.otlp_endpoint is not None:
        log.info("exporting traces over OTLP to %s", config.otlp_endpoint)
    return await serving.serve(config, server, stopping)
