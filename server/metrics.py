"""Prometheus metrics for operators: calls by method and code, latency, the database's state."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

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
DATABASE_STATEMENTS = Counter(
    "conversation_service_database_statements",
    "SQL statements sent to the database (queries, writes, transaction control)",
)
DATABASE_UP = Gauge(
    "conversation_service_database_up",
    "1 when the last health probe of the database succeeded, 0 when it failed",
    # With several server processes: 1 only when every live process's last probe succeeded.
    multiprocess_mode="livemin",
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
PROCESS_RESTARTS = Counter(
    "conversation_service_process_restarts",
    "Times a gRPC server process of `serve --processes N` exited and serve started it again",
)
# What the supervising process of `serve --processes N` counts itself; the server
# processes count the rest, in prometheus_client's multiprocess files.
SUPERVISOR_METRICS = frozenset(
    family.name
    for metric in (REFUSALS, ENVOY_RESTARTS, PROCESS_RESTARTS)
    for family in metric.describe()
)


class MetricsInterceptor(CallObserver):
    """Counts every call by method and status code and records how long it took."""

    def __init__(self) -> None:
        # Each method's and code's metrics, looked up once (the methods are the registered ones).
        self._calls: dict[tuple[str, grpc.StatusCode], Counter] = {}
        self._seconds: dict[str, Histogram] = {}

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        calls = self._calls.get((method, code))
        if calls is None:
            calls = self._calls[method, code] = CALLS.labels(method, code.name)
        calls.inc()
        histogram = self._seconds.get(method)
        if histogram is None:
            histogram = self._seconds[method] = CALL_SECONDS.labels(method)
        histogram.observe(seconds)


def count_database_error(error: BaseException) -> None:
    DATABASE_ERRORS.labels(type(error).__name__).inc()


def count_database_statement() -> None:
    DATABASE_STATEMENTS.inc()


def count_grpc_refusal(method: str, limit: str) -> None:
    REFUSALS.labels("grpc", limit, "RESOURCE_EXHAUSTED").inc()


def count_envoy_refusal(reason: str, status: str) -> None:
    REFUSALS.labels("envoy", reason[:80], status).inc()


def count_envoy_restart(exit_code: int) -> None:
    ENVOY_RESTARTS.inc()


def count_process_restart(exit_code: int) -> None:
    PROCESS_RESTARTS.inc()


def report_database(available: bool) -> None:
    DATABASE_UP.set(1 if available else 0)


class ProcessesCollector(Collector):
    """The metrics of `serve --processes N` as one set: those of the server processes, from
    prometheus_client's multiprocess files in `directory`, and the supervisor's own.

    A sample both have (a counter the server processes never increase) is added up.
    """

    def __init__(self, directory: Path) -> None:
        self._files = MultiProcessCollector(None, path=str(directory))

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
        own = (family for family in REGISTRY.collect() if family.name in SUPERVISOR_METRICS)
        for family in itertools.chain(self._files.collect(), own):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                samples[family.name] = {}
            merged = samples[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                before = merged.get(key)
                merged[key] = (
                    sample if before is None else sample._replace(value=before.value + sample.value)
                )
        for name, family in families.items():
            family.samples = list(samples[name].values())
            yield family


def forget_process(pid: int, directory: Path) -> None:
    """A server process has exited: its gauges leave the live* aggregations (its counters stay)."""
    multiprocess.mark_process_dead(pid, str(directory))


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


def start_metrics_server(address: str, processes: Path | None = None) -> MetricsServer:
    """Serve GET /metrics in the Prometheus text format on `address` ([HOST:]PORT): this
    process's metrics, or with `processes` (a multiprocess directory) those of every server
    process of `serve --processes N` and this one's (ProcessesCollector)."""
    host, port = metrics_host_port(address)
    registry = REGISTRY
    if processes is not None:
        registry = CollectorRegistry()
        registry.register(ProcessesCollector(processes))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)
