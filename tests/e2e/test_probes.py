"""GET /healthz (liveness) and GET /readyz (readiness, following gRPC health) on the REST port,
answered by the service's Envoy without a key: for a load balancer's HTTP probes."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.service import HttpResponse, ServiceProcess, http
from tests.postgres_cluster import PostgresCluster

SERVING = {"status": "SERVING"}
NOT_SERVING = {"status": "NOT_SERVING"}


def wait_for_status(url: str, status: int, timeout: float = 20) -> HttpResponse:
    """GET `url` every 0.1 s until it answers `status`; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    response = None
    while time.monotonic() < deadline:
        response = http("GET", url)
        if response.status == status:
            return response
        time.sleep(0.1)
    raise AssertionError(f"{url} answered {response} for {timeout} s, never {status}")


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    server = PostgresCluster()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def test_healthz_is_200_json_without_a_key(rest: ServiceProcess) -> None:
    response = http("GET", rest.base_url + "/healthz")

    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_serving_without_a_key(rest: ServiceProcess) -> None:
    response = wait_for_status(rest.base_url + "/readyz", 200)

    assert response.headers["content-type"] == "application/json"
    assert response.json() == SERVING


def test_readyz_is_503_while_the_database_is_down_and_200_again_after(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    args = ["--database-url", own_postgres.url, "--processes", "1"]
    with ServiceProcess(tmp_path, args, rest=True) as service:
        ready = service.base_url + "/readyz"
        wait_for_status(ready, 200)
        own_postgres.stop()
        down = wait_for_status(ready, 503)
        alive = http("GET", service.base_url + "/healthz")
        # A request Envoy refuses, logged after the probes' answers (Envoy's log in order).
        refused = http("GET", service.base_url + "/nowhere")
        service.wait_for_log(r'"http_refused".*"/nowhere"')
        own_postgres.start()
        again = wait_for_status(ready, 200)

    assert down.headers["content-type"] == "application/json"
    assert refused.status == 404
    assert "/readyz" not in service.log()  # the probes' 503s are no refusals
    assert down.json() == NOT_SERVING
    assert alive.status == 200  # liveness: the process is up, restarting would not help
    assert again.json() == SERVING


def test_readyz_is_503_while_draining_and_healthz_stays_200(tmp_path: Path) -> None:
    # Health reports NOT_SERVING for the drain delay while calls are still served.
    with ServiceProcess(tmp_path, ["--drain-delay", "5"], rest=True) as service:
        ready = service.base_url + "/readyz"
        wait_for_status(ready, 200)
        service.process.send_signal(signal.SIGTERM)
        draining = wait_for_status(ready, 503)
        alive = http("GET", service.base_url + "/healthz")
        exit_code = service.process.wait(timeout=30)

    assert draining.json() == NOT_SERVING
    assert alive.status == 200
    assert exit_code == 0
