"""The one serve loop of `serve` and its one drain sequence, for both shapes of its gRPC
serving: a server in this process (server.app), or N server processes (processes/workers.py).

Either way `serve` starts the gRPC serving, then Envoy in front of it (with REST on),
then the metrics port, reports SERVING, waits for SIGTERM or SIGINT, and drains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from server import metrics
from server.addresses import split_address
from server.config import Config
from server.logs import access_log
from server.rest.envoy import SupervisedEnvoy
from server.rest.envoy_config import Listener
from server.supervisor import StartFailed

log = logging.getLogger(__name__)


class Servers(Protocol):
    """The gRPC serving of one `serve`: one server in this process, or N processes."""

    @property
    def upstreams(self) -> Sequence[str]:
        """Where Envoy reaches the servers."""

    @property
    def metrics_directory(self) -> Path | None:
        """The server processes' metrics (multiprocess mode); None in one process."""

    async def start(self) -> None:
        """Start serving, health NOT_SERVING; StartFailed if a server does not start."""

    async def report_serving(self) -> None:
        """Every part of `serve` is up: SERVING while the database answers."""

    async def report_draining(self) -> None:
        """NOT_SERVING from now on, still serving."""

    async def stop(self, grace: float) -> bool:
        """Let the calls in flight finish within `grace` s and stop; True when all ended
        cleanly."""

    async def close(self) -> None:
        """Release what serving held (the database), once stopped."""


async def serve(config: Config, servers: Servers, stopping: asyncio.Event) -> int:
    """Serve until `stopping` is set (SIGTERM, SIGINT), then drain; returns the exit code."""
    try:
        await servers.start()
    except StartFailed as error:
        log.error("%s", error)
        await servers.stop(grace=0)
        await servers.close()
        return 1
    proxy: SupervisedEnvoy | None = None
    if config.rest:
        try:
            proxy = await asyncio.to_thread(start_rest_proxy, config, servers.upstreams)
        except StartFailed as error:
            log.error("REST proxy failed to start: %s", error)
            await servers.stop(grace=0)
            await servers.close()
            return 1
        log.info(
            "REST serving on %s (Envoy gRPC-JSON transcoder, Envoy pid %d)",
            config.http_address,
            proxy.pid,
        )
    metrics_server = start_metrics(config, servers.metrics_directory)
    await servers.report_serving()
    await stopping.wait()
    clean = await drain(servers, proxy, config.grace_period, config.drain_delay)
    if proxy is not None:
        await asyncio.to_thread(proxy.stop)
    # Calls cut off by the grace period may have queued creates: they are written here.
    await servers.close()
    if metrics_server is not None:
        metrics_server.stop()
    log.info("stopped")
    return 0 if clean else 1


async def drain(
    servers: Servers, proxy: SupervisedEnvoy | None, grace: float, delay: float = 0.0
) -> bool:
    """Finish the calls in flight, taking no new ones, within `grace` seconds; True when
    every server stopped cleanly.

    Health reports NOT_SERVING at once and calls are still served for `delay`
    seconds, so that load balancers that check health stop sending them. Then
    Envoy stops taking requests and its requests in flight are answered while
    the gRPC servers still run; then the gRPC servers refuse new calls and
    give their own calls in flight what is left of the grace period.
    """
    await servers.report_draining()
    await asyncio.sleep(delay)
    deadline = time.monotonic() + grace
    if proxy is not None:
        await asyncio.to_thread(proxy.drain, grace)
    return await servers.stop(max(0.0, deadline - time.monotonic()))


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
    host, _ = split_address(config.metrics_address, default_host="127.0.0.1")
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server
