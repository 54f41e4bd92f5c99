"""Prometheus metrics for operators: calls by method and code, latency, the database's state."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from server.api.interceptors import CallObserver

CALLS = Counter(
    "conversation_service_calls",
    "gRPC calls answered, by method and status code (REST calls arrive through Envoy as gRPC)",
    ["method", "code"],
)
CALL_SECONDS = Histogram(
    "conversation_service_call_duration_seconds",
    "Time to answer a gRPC call, by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DATABASE_ERRORS = Counter(
    "conversation_service_database_errors",
    "Units of work that failed because the database was unavailable, by error class",
    ["error"],
)
DATABASE_UP = Gauge(
    "conversation_service_database_up",
    "1 when the last health probe of the database succeeded, 0 when it failed",
)

REFUSALS = Counter(
    "conversation_service_refusals",
    "Requests refused for a limit before any work: by the gRPC server (where=grpc, reason the "
    "limit) or by Envoy (where=envoy, reason Envoy's response code details, status the HTTP "
    "status); the refused gRPC calls are in conversation_service_calls_total as well",
    ["where", "reason", "status"],
)
ENVOY_RESTARTS = Counter(
    "conversation_service_envoy_restarts",
    "Times Envoy died and the service started it again",
)


class MetricsInterceptor(CallObserver):
    """Counts every call by method and status code and records how long it took."""

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        CALLS.labels(method, code.name).inc()
        CALL_SECONDS.labels(method).observe(seconds)


def count_database_error(error: BaseException) -> None:
    DATABASE_ERRORS.labels(type(error).__name__).inc()


def count_grpc_refusal(method: str, limit: str) -> None:
    REFUSALS.labels("grpc", limit, "RESOURCE_EXHAUSTED").inc()


def count_envoy_refusal(reason: str, status: str) -> None:
    REFUSALS.labels("envoy", reason[:80], status).inc()


def count_envoy_restart(exit_code: int) -> None:
    ENVOY_RESTARTS.inc()


def report_database(available: bool) -> None:
    DATABASE_UP.set(1 if available else 0)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def metrics_host_port(address: str) -> tuple[str, int]:
    """'[HOST:]PORT' as (host, port); the host is 127.0.0.1 when left out."""
    host, _, port = address.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def start_metrics_server(address: str) -> MetricsServer:
    """Serve GET /metrics in the Prometheus text format on `address` ([HOST:]PORT)."""
    host, port = metrics_host_port(address)
    server, thread = start_http_server(port, addr=host)
    return MetricsServer(server, thread)
