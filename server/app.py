"""Assembles the gRPC server (service, health, reflection, interceptors) and runs it."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server import metrics
from server.api.auth import AuthInterceptor
from server.api.decoding import DecodingInterceptor
from server.api.interceptors import AccessLogInterceptor
from server.api.reflection import enable_documented_reflection
from server.api.servicer import SERVICE_NAME, ConversationService
from server.config import Config
from server.rest.envoy import EnvoyFailed, EnvoyProcess, render_config, split_address, start_envoy
from server.service.authentication import Authenticator
from server.service.organisations import seed_demo
from server.signals import stop_requested_async
from server.storage.health import DatabaseHealthWatcher
from server.storage.store import Store

log = logging.getLogger(__name__)

# Answers are small; reflection answers (descriptors) are the largest.
MAX_SEND_BYTES = 4 * 1024 * 1024


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    # Where the local Envoy connects: the port itself on loopback, or with TLS
    # on it, a plaintext port on 127.0.0.1 that only this machine reaches.
    local_address: str

    async def mark_serving(self, serving: bool = True) -> None:
        """Report SERVING (or NOT_SERVING): every part is ready (or the database is down)."""
        statuses = health_pb2.HealthCheckResponse
        status = statuses.SERVING if serving else statuses.NOT_SERVING
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)

    async def stop(self, grace: float) -> None:
        """Stop taking calls, report NOT_SERVING, and let in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(config: Config, store: Store) -> RunningServer:
    """Start serving on config.grpc_address, in the running event loop; the store's
    database must be migrated.

    Every call is served on the event loop; what waits on the database waits in
    other threads (the group commit's writer, the loop's default executor).
    Health reports NOT_SERVING until mark_serving().
    """
    authenticator = Authenticator(store, config.rate_limit, config.rate_burst)
    server = grpc.aio.server(
        interceptors=[
            AccessLogInterceptor(),
            metrics.MetricsInterceptor(),
            AuthInterceptor(authenticator, f"/{SERVICE_NAME}/"),
            DecodingInterceptor(),  # last: the others keep its decoder
        ],
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            # Without this a second server on the same port starts silently.
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=config.max_concurrent_calls or None,
    )
    pb_grpc.add_ConversationServiceServicer_to_server(ConversationService(store), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    if config.reflection:
        enable_documented_reflection(
            server,
            (SERVICE_NAME, health.SERVICE_NAME),
            # Beside the generated module; importlib.resources cannot read namespace packages.
            Path(pb.__file__).with_name("conversation_service.binpb"),
            health_pb2.DESCRIPTOR,
            reflection_pb2.DESCRIPTOR,
        )
    credentials = _server_credentials(config)
    if credentials is None:
        port = server.add_insecure_port(config.grpc_address)
    else:
        port = server.add_secure_port(config.grpc_address, credentials)
    local_address = _loopback_address(config.grpc_address, port)
    if credentials is not None and config.rest:
        local_address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    return RunningServer(server, health_servicer, port, local_address)


def _server_credentials(config: Config) -> grpc.ServerCredentials | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def prepare_database(config: Config) -> Store:
    """Open the database, apply pending migrations, and, when asked (--demo), seed the demo
    organisation and its key."""
    store = Store.open(
        config.database_url,
        sqlite_synchronous=config.sqlite_synchronous,
        timeout=config.database_timeout,
        on_unavailable=metrics.count_database_error,
    )
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


def start_rest_proxy(config: Config, upstream: str) -> EnvoyProcess:
    yaml = render_config(
        config.http_address,
        [upstream],
        max_request_bytes=config.max_request_bytes,
    )
    return start_envoy(yaml, workers=config.envoy_workers)


async def _set_when_exits(proxy: EnvoyProcess, event: asyncio.Event) -> None:
    await asyncio.to_thread(proxy.process.wait)
    event.set()


def start_metrics(config: Config) -> metrics.MetricsServer | None:
    """Serve Prometheus metrics when an address is configured."""
    if config.metrics_address is None:
        return None
    server = metrics.start_metrics_server(config.metrics_address)
    host, _ = metrics.metrics_host_port(config.metrics_address)
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server


async def drain(
    running: RunningServer, proxy: EnvoyProcess | None, grace: float, delay: float = 0.0
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

    With REST on, Envoy runs beside the gRPC server; if it dies, the service
    stops and exits non-zero rather than serving gRPC alone.
    """
    store = prepare_database(config)
    try:
        return asyncio.run(_serve(config, store))
    finally:
        store.close()  # closed already, unless serving failed


async def _serve(config: Config, store: Store) -> int:
    loop = asyncio.get_running_loop()
    # Where database reads wait: keys and organisations not seen before.
    loop.set_default_executor(
        futures.ThreadPoolExecutor(config.workers, thread_name_prefix="database")
    )
    running = await start_server(config, store)
    log.info("gRPC serving on port %d (%s)", running.port, config.grpc_address)
    proxy: EnvoyProcess | None = None
    stopping = stop_requested_async()
    if config.rest:
        try:
            proxy = await asyncio.to_thread(start_rest_proxy, config, running.local_address)
        except EnvoyFailed as error:
            log.error("REST proxy failed to start: %s", error)
            await running.stop(grace=0)
            return 1
        log.info(
            "REST serving on %s (Envoy gRPC-JSON transcoder, Envoy pid %d)",
            config.http_address,
            proxy.process.pid,
        )
        envoy_watch = asyncio.create_task(_set_when_exits(proxy, stopping))
    metrics_server = start_metrics(config)

    def report_database(available: bool) -> None:  # in the watcher's thread
        asyncio.run_coroutine_threadsafe(running.mark_serving(available), loop)
        metrics.report_database(available)

    watcher = DatabaseHealthWatcher(store.ping, report_database)
    await asyncio.to_thread(watcher.start)

    await stopping.wait()
    envoy_died = proxy is not None and proxy.process.poll() is not None
    if proxy is not None and envoy_died:
        log.error("Envoy exited with code %s; stopping", proxy.process.returncode)
    await asyncio.to_thread(watcher.stop)
    if envoy_died:
        await running.stop(0)
    else:
        await drain(running, proxy, config.grace_period, config.drain_delay)
    if proxy is not None:
        await asyncio.to_thread(proxy.stop)
        await envoy_watch  # done: Envoy has exited
    # Calls cut off by the grace period may have queued creates: write them.
    await asyncio.to_thread(store.close)
    if metrics_server is not None:
        metrics_server.stop()
    log.info("stopped")
    return 1 if envoy_died else 0
