"""The service's configuration: one typed object, built once at start-up and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///var/conversations.db"
DEFAULT_GRPC_ADDRESS = "127.0.0.1:50051"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8080"


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    grpc_address: str = DEFAULT_GRPC_ADDRESS
    # REST through Envoy's transcoder, started beside the gRPC server.
    rest: bool = True
    http_address: str = DEFAULT_HTTP_ADDRESS
    envoy_workers: int = 1
    # Threads that read the database for calls: keys and organisations not seen
    # before (calls themselves are served on one event loop; creates are written
    # by the group commit's own thread).
    workers: int = 32
    # Calls served at once; more are refused at once with RESOURCE_EXHAUSTED
    # rather than queue without bound (0: no limit). Envoy's default circuit
    # breaker allows 1,024 requests at once to the service, a like bound.
    max_concurrent_calls: int = 1000
    # Largest request message in bytes; larger requests are refused with
    # RESOURCE_EXHAUSTED before they are parsed.
    max_request_bytes: int = 64 * 1024
    # Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    grace_period: float = 10.0
    # Seconds to keep serving after SIGTERM/SIGINT while health reports
    # NOT_SERVING, so that a load balancer in front (the `proxy` command's
    # Envoy checks health every second) stops sending calls first.
    drain_delay: float = 0.0
    # SQLite's PRAGMA synchronous: FULL survives power loss, NORMAL only a
    # process crash.
    sqlite_synchronous: str = "FULL"
    # Calls per second each API key may make (per process), and the burst it
    # may spend at once; 0 turns the limit off.
    rate_limit: float = 10_000.0
    rate_burst: float = 10_000.0
    # Server reflection (grpcurl list/describe); some deployments close it.
    reflection: bool = True
    # TLS for the gRPC port: certificate and key in PEM; with a client CA,
    # clients must present a certificate it signed (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Seconds any wait on the database may last (a pooled connection, a lock,
    # a statement, a new connection) before the call fails with UNAVAILABLE.
    database_timeout: float = 2.0
    # HOST:PORT of the Prometheus endpoint (GET /metrics); None turns it off.
    metrics_address: str | None = None

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")
