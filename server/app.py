"""Assembles the gRPC server (service, health, reflection, interceptors) and runs it."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server import organisations, storage
from server.config import Config
from server.grpc_service import SERVICE_NAME, ConversationService
from server.interceptors import AccessLogInterceptor
from server.reflection import enable_documented_reflection

log = logging.getLogger(__name__)

# Answers are small; reflection answers (descriptors) are the largest.
MAX_SEND_BYTES = 4 * 1024 * 1024


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    port: int

    def stop(self, grace: float) -> None:
        """Stop taking calls, report NOT_SERVING, and let in-flight calls finish."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def start_server(config: Config) -> RunningServer:
    """Start serving on config.grpc_address; the database must be open and migrated."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="rpc"),
        interceptors=[AccessLogInterceptor()],
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            # Without this a second server on the same port starts silently.
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_ConversationServiceServicer_to_server(ConversationService(), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_documented_reflection(
        server,
        (SERVICE_NAME, health.SERVICE_NAME),
        # Beside the generated module; importlib.resources cannot read namespace packages.
        Path(pb.__file__).with_name("conversation_service.binpb"),
        health_pb2.DESCRIPTOR,
        reflection_pb2.DESCRIPTOR,
    )
    port = server.add_insecure_port(config.grpc_address)
    server.start()
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health_servicer, port)


def prepare_database(config: Config) -> None:
    """Open the database, apply pending migrations, and seed the embedded demo organisation."""
    storage.open_database(config.database_url, sqlite_synchronous=config.sqlite_synchronous)
    applied = storage.migrate()
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    if config.embedded and organisations.ensure_demo_organisation():
        demo = organisations.DEMO
        log.info("created the demo organisation %s (%s)", demo.trkref, demo.locale)


def serve(config: Config) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; returns the exit code."""
    prepare_database(config)
    running = start_server(config)
    host = config.grpc_address.rsplit(":", 1)[0]
    log.info("gRPC serving on %s:%d", host, running.port)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    running.stop(config.grace_period)
    # Calls cut off by the grace period may have queued creates: write them.
    storage.close_database()
    log.info("stopped")
    return 0
