"""The Prometheus endpoint: calls by method and status code, latency, the database's state."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.load import OK, grpc_create
from tests.e2e.service import ServiceProcess, free_port, http

CREATE = "/conversations.v4.ConversationService/CreateConversation"


def test_metrics_count_calls_by_method_and_code(tmp_path: Path) -> None:
    port = free_port()
    with ServiceProcess(tmp_path, ["--metrics-address", str(port)], demo=True) as service:
        create = grpc_create(service.address)
        outcomes = [create("first")[0], create("second")[0], create("")[0]]
        scraped = http("GET", f"http://127.0.0.1:{port}/metrics")

    assert outcomes == [OK, OK, "INVALID_ARGUMENT"]
    assert scraped.status == 200
    lines = scraped.body.decode().splitlines()
    assert f'conversation_service_calls_total{{code="OK",method="{CREATE}"}} 2.0' in lines
    assert (
        f'conversation_service_calls_total{{code="INVALID_ARGUMENT",method="{CREATE}"}} 1.0'
        in lines
    )
    assert f'conversation_service_call_duration_seconds_count{{method="{CREATE}"}} 3.0' in lines
    assert "conversation_service_database_up 1.0" in lines
    assert f"metrics on http://127.0.0.1:{port}/metrics" in service.log()


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, demo=True) as service:
        log = service.log()
    assert "metrics on" not in log
