"""`conversation-service proxy`: one Envoy balancing REST and gRPC over several replicas.

The configuration is rendered from the same template `serve` uses, with one
endpoint per `--upstream` (each a `serve --no-rest` replica).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from server.config import Config
from server.rest_proxy import EnvoyFailed, render_config, start_envoy
from server.signals import stop_requested

log = logging.getLogger(__name__)


def run_proxy(
    http_address: str,
    upstreams: Sequence[str],
    *,
    admin_address: str = "127.0.0.1:0",
    workers: int = 1,
    max_request_bytes: int = Config.max_request_bytes,
    grace_period: float = 10.0,
) -> int:
    """Run Envoy until SIGTERM or SIGINT, then drain it; returns the exit code."""
    yaml = render_config(
        http_address, upstreams, admin=admin_address, max_request_bytes=max_request_bytes
    )
    try:
        proxy = start_envoy(yaml, workers=workers)
    except EnvoyFailed as error:
        log.error("Envoy failed to start: %s", error)
        return 1
    log.info(
        "proxy serving on %s for %s (Envoy pid %d, admin %s)",
        http_address,
        ", ".join(upstreams),
        proxy.process.pid,
        proxy.admin_url,
    )
    stopping = stop_requested()
    while not stopping.wait(0.5):
        if proxy.process.poll() is not None:
            log.error("Envoy exited with code %s", proxy.process.returncode)
            proxy.stop()
            return 1
    proxy.drain(grace_period)
    proxy.stop()
    log.info("stopped")
    return 0
