"""The service's configuration: one typed object, built once at start-up and passed down.

Each field is described once, here: the command line's options, their
environment variables, `--help` and the options table of docs/operations.md are derived from it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///var/conversations.db"
DEFAULT_GRPC_ADDRESS = "127.0.0.1:50051"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8080"


def web_origin(text: str) -> str:
    """A web origin as browsers send it: scheme://host[:port], no path; ValueError otherwise."""
    if not re.fullmatch(r"https?://[^\s/?#:]+(:[0-9]{1,5})?", text):
        raise ValueError(f"expected an origin such as https://shop.example, got {text!r}")
    return text


def option(default: Any, meaning: str, **argparse_extra: Any) -> Any:
    """A field of Config and the command-line option of the same name, with its meaning."""
    return field(default=default, metadata={"help": meaning, "argparse": argparse_extra})


@dataclass(frozen=True)
class Config:
    database_url: str = option(
        DEFAULT_DATABASE_URL,
        "peewee database URL: sqlite:///PATH (embedded) or postgresql://USER@HOST:PORT/NAME",
    )
    grpc_address: str = option(DEFAULT_GRPC_ADDRESS, "HOST:PORT to listen on for gRPC")
    rest: bool = option(True, "serve REST through Envoy's gRPC-JSON transcoder")
    http_address: str = option(DEFAULT_HTTP_ADDRESS, "HOST:PORT for REST through Envoy")
    envoy_workers: int = option(1, "Envoy worker threads")
    # Calls are served on one event loop; these threads read what a call needs
    # and has not seen before, and creates are written by the group commit's thread.
    workers: int = option(32, "threads reading the database for calls (keys, organisations)")
    # Envoy's default circuit breaker allows 1,024 requests at once to the
    # service, a like bound.
    max_concurrent_calls: int = option(
        1000, "calls served at once; more are refused with RESOURCE_EXHAUSTED (0: no limit)"
    )
    max_request_bytes: int = option(
        64 * 1024,
        "largest request (gRPC message or REST body); larger ones get RESOURCE_EXHAUSTED, HTTP 413",
    )
    grace_period: float = option(10.0, "seconds in-flight calls get to finish on shutdown")
    # The `proxy` command's Envoy checks health every second.
    drain_delay: float = option(
        0.0,
        "seconds to go on serving after SIGTERM while health reports NOT_SERVING, for a load "
        "balancer to stop sending calls (2 behind `proxy`)",
    )
    sqlite_synchronous: str = option(
        "FULL",
        "SQLite durability: FULL survives power loss, NORMAL only a crash of the process",
        choices=["FULL", "NORMAL"],
    )
    # A page or a conversation is kept with its product's counts and revision, which
    # every write that changes what the product's reads show changes (docs/architecture.md).
    read_cache_mib: int = option(
        32,
        "MiB of List pages and Detail conversations a process keeps, served again while "
        "their product is unchanged (0: none)",
    )
    rate_limit: float = option(
        10_000.0,
        "calls per second per API key and process, 0 for no limit; over it: "
        "RESOURCE_EXHAUSTED, HTTP 429",
    )
    rate_burst: float = option(10_000.0, "calls a key may make at once above its rate")
    failed_auth_rate: float = option(
        10.0,
        "failed authentications per second per client address and process, 0 for no limit; "
        "over it a key the process does not know is not looked up (RESOURCE_EXHAUSTED, HTTP "
        "429) and failures are answered after --failed-auth-delay",
    )
    failed_auth_burst: float = option(
        100.0, "failed authentications a client address may make at once above its rate"
    )
    # A flood holding many calls open then gets few answers a second: each is work
    # for the one event loop that serves every caller.
    failed_auth_delay: float = option(
        5.0,
        "seconds the answer to a failed authentication waits once its address is over "
        "--failed-auth-rate",
    )
    reflection: bool = option(True, "server reflection (grpcurl list and describe)")
    tls_cert: Path | None = option(
        None, "PEM certificate (chain) of the gRPC port: serve gRPC over TLS"
    )
    tls_key: Path | None = option(None, "PEM private key of --tls-cert")
    tls_client_ca: Path | None = option(
        None, "PEM CA certificates: require client certificates they signed (mutual TLS)"
    )
    database_timeout: float = option(
        2.0,
        "seconds a call may wait on the database (a connection, a lock, a query) before it "
        "fails with UNAVAILABLE",
    )
    metrics_address: str | None = option(
        None,
        "serve Prometheus metrics at http://HOST:PORT/metrics (HOST 127.0.0.1 when left out; "
        "off when not given)",
        metavar="[HOST:]PORT",
    )
    # Hardening of the edges against callers without a key (docs/operations.md, Hardening).
    http_request_timeout: float = option(
        10.0,
        "seconds a REST client has to send a request's headers and body; slower ones get "
        "HTTP 408 from Envoy and never reach the service",
    )
    max_streams: int = option(
        100,
        "long-lived gRPC streams (health Watch, reflection) open at once, outside "
        "--max-concurrent-calls; more are refused with RESOURCE_EXHAUSTED",
    )
    max_connections: int = option(
        1000, "connections the gRPC port accepts at once (1,000 concurrent calls each)"
    )
    http_tls_cert: Path | None = option(
        None, "PEM certificate (chain) of the REST port: serve REST over TLS (HTTPS)"
    )
    http_tls_key: Path | None = option(None, "PEM private key of --http-tls-cert")
    cors_origin: tuple[str, ...] = option(
        (),
        "an origin (scheme://host[:port]) whose web pages may call the REST API from a "
        "browser (CORS); repeat for each, or separate them with spaces in the variable (off "
        "when not given)",
        action="append",
        type=web_origin,
        metavar="ORIGIN",
    )
    otlp_endpoint: str | None = option(
        None,
        "export OpenTelemetry traces (the service's and Envoy's spans) over OTLP gRPC to "
        "HOST:PORT, in plaintext; the standard OTEL_* variables apply (off when not given)",
        metavar="[http://]HOST:PORT",
    )
    # grpc.aio runs every call's Python on one event loop, so a process uses one core;
    # serve runs this many server processes on the one gRPC port (docs/operations.md).
    processes: int = option(
        0,
        "gRPC server processes on the one gRPC port (SO_REUSEPORT), supervised by serve; 0: one "
        "per core on PostgreSQL, 1 on SQLite, whose one write lock more processes wait on "
        "(docs/operations.md)",
    )

    # Every line on stderr, the service's and its Envoy's (docs/operations.md, Logs).
    log_level: str = option(
        "info",
        "the least severe log lines written: debug, info (a line per call), warning or error",
        choices=["debug", "info", "warning", "error"],
    )
    log_format: str = option(
        "json",
        "log lines as JSON objects, one a line (for a log pipeline), or text (for a terminal)",
        choices=["json", "text"],
    )

    # Off unless asked for (`make run` asks): a production database that is lost and
    # recreated must not come back with a documented key.
    demo: bool = option(
        False,
        "create the demo organisation D10 and its key demo:demo-secret on a database without "
        "organisations",
    )

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    def process_count(self) -> int:
        """How many server processes serve: --processes, or its default for the database."""
        if self.processes > 0:
            return self.processes
        return 1 if self.embedded else len(os.sched_getaffinity(0))
