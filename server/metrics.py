"""Prometheus metrics for operators: calls by method and code, latency, the database's state."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from server.addresses import split_address
from server.service.errors import DomainError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The calls, under the names of grpc-ecosystem's go-grpc-prometheus and py-grpc-prometheus,
# which the usual gRPC dashboards and alerts read (docs/operations.md, Metrics).
CALL_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
STARTED = Counter(
    "grpc_server_started",
    "gRPC calls started on the server (REST calls arrive through Envoy as gRPC)",
    CALL_LABELS,
)
HANDLED = Counter(
    "grpc_server_handled",
    "gRPC calls completed on the server, whatever their status code",
    [*CALL_LABELS, "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from a call's start to its status, by status code as well",
    [*CALL_LABELS, "grpc_code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge(
    "grpc_server_in_flight_calls",
    "gRPC calls started and not yet completed",
    CALL_LABELS,
    # With several server processes: the sum over the live ones.
    multiprocess_mode="livesum",
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
# Moderation: the queue as the last periodic read found it, and the decisions recorded.
MODERATION_QUEUE_DEPTH = Gauge(
    "conversation_service_moderation_queue_depth",
    "Pending conversations and answers of an organisation, as last read (every "
    "MODERATION_QUEUE_INTERVAL seconds)",
    ["trkref"],
    # Every process reads the same database: any live one's value.
    multiprocess_mode="livemax",
)
MODERATION_QUEUE_OLDEST_SECONDS = Gauge(
    "conversation_service_moderation_queue_oldest_seconds",
    "Age of an organisation's oldest pending item when the queue was last read; 0 when empty",
    ["trkref"],
    multiprocess_mode="livemax",
)
MODERATION_DECISIONS = Counter(
    "conversation_service_moderation_decisions",
    "Moderators' decisions that changed an item's status, by target and verdict",
    ["target", "verdict"],
)
REPORTS = Counter(
    "conversation_service_reports",
    "Shoppers' reports that counted (a repeat of a reporter's does not), by reason",
    ["reason"],
)
REPORTED_BACK = Counter(
    "conversation_service_reported_back",
    "Published items that reached their organisation's threshold of reports and went back "
    "to the moderation queue, by target",
    ["target"],
)
# Seconds between two reads of the queue for its gauges: a grouped count of two partial
# indexes' rows.
MODERATION_QUEUE_INTERVAL = 15.0

REFUSALS = Counter(
    "conversation_service_refusals",
    "Requests refused for a limit before any work: by the gRPC server (where=grpc, reason the "
    "limit) or by Envoy (where=envoy, reason Envoy's response code details, status the HTTP "
    "status); the refused gRPC calls are in grpc_server_handled_total as well",
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


class _MethodMetrics:
    """One method's metrics, their label values bound once, as the method is registered."""

    def __init__(self, method: str, call_type: str) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self.labels = (call_type, service, name)
        self.started = STARTED.labels(*self.labels)
        self.in_flight = IN_FLIGHT.labels(*self.labels)
        # The codes' series appear with their first call; the method's own at 0 from the
        # start, so that every method served is listed before its first call.
        self.handled: dict[grpc.StatusCode, Counter] = {}
        self.seconds: dict[grpc.StatusCode, Histogram] = {}

    def begin(self, metadata: object) -> None:
        self.started.inc()
        self.in_flight.inc()

    def end(self, code: grpc.StatusCode, seconds: float) -> None:
        self.in_flight.dec()
        handled = self.handled.get(code)
        if handled is None:
            handled = self.handled[code] = HANDLED.labels(*self.labels, code.name)
            self.seconds[code] = HANDLING_SECONDS.labels(*self.labels, code.name)
        handled.inc()
        self.seconds[code].observe(seconds)


class MetricsInterceptor:
    """Counts every call as it starts and as it ends, by method and status code, and
    records how long it took: a call observer (server/api/observers.py)."""

    def __init__(self) -> None:
        self._methods: dict[str, _MethodMetrics] = {}

    def observing(self, method: str, call_type: str) -> _MethodMetrics:
        """The metrics of `method`, whose kind is `call_type` (unary, client_stream,
        server_stream or bidi_stream)."""
        metrics = self._methods.get(method)
        if metrics is None:
            metrics = self._methods[method] = _MethodMetrics(method, call_type)
        return metrics


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


def count_moderation_decision(target: str, verdict: str) -> None:
    MODERATION_DECISIONS.labels(target, verdict).inc()


def count_report(reason: str, target: str, held: bool) -> None:
    REPORTS.labels(reason).inc()
    if held:
        REPORTED_BACK.labels(target).inc()


def report_moderation_queue(
    depths: list[tuple[str, int, datetime.datetime | None]], reported: set[str]
) -> set[str]:
    """Set the queue's gauges from a read of it; organisations reported before and absent
    now read 0. Returns the organisations reported."""
    now = datetime.datetime.now(datetime.UTC)
    found = {trkref for trkref, _, _ in depths}
    for trkref in reported - found:
        MODERATION_QUEUE_DEPTH.labels(trkref).set(0)
        MODERATION_QUEUE_OLDEST_SECONDS.labels(trkref).set(0)
    for trkref, depth, oldest in depths:
        MODERATION_QUEUE_DEPTH.labels(trkref).set(depth)
        age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        MODERATION_QUEUE_OLDEST_SECONDS.labels(trkref).set(age)
    return reported | found


class QueueMeasured(Protocol):
    @property
    def moderation(self) -> QueueDepth: ...


class QueueDepth(Protocol):
    def queue_depth(self) -> list[tuple[str, int, datetime.datetime | None]]: ...


async def keep_measuring_queue(store: QueueMeasured) -> None:
    """Read the moderation queue's depth and age (in a thread) every interval."""
    reported: set[str] = set()
    while True:
        try:
            depths = await asyncio.to_thread(store.moderation.queue_depth)
        except DomainError:  # the database is down: the gauges keep their last values
            pass
        else:
            reported = report_moderation_queue(depths, reported)
        await asyncio.sleep(MODERATION_QUEUE_INTERVAL)


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


METRICS_PATH = "/metrics"
NOT_FOUND = b"404 not found: the metrics are at /metrics\n"


def metrics_only(registry: CollectorRegistry) -> WSGIApplication:
    """prometheus_client's WSGI application at /metrics, and 404 for any other path: the
    port says nothing of the service's health, which has its own checks."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            start_response("404 Not Found", [*headers, ("Content-Length", str(len(NOT_FOUND)))])
            return [NOT_FOUND]
        answer: Iterable[bytes] = metrics_app(environ, start_response)
        return answer

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape on stderr."""


def start_metrics_server(address: str, processes: Path | None = None) -> MetricsServer:
    """Serve GET /metrics in the Prometheus text format on `address` ([HOST:]PORT): this
    process's metrics, or with `processes` (a multiprocess directory) those of every server
    process of `serve --processes N` and this one's (ProcessesCollector)."""
    host, port = split_address(address, default_host="127.0.0.1")
    registry = REGISTRY
    if processes is not None:
        registry = CollectorRegistry()
        registry.register(ProcessesCollector(processes))

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = make_server(host, port, metrics_only(registry), Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
