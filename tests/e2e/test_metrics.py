"""The Prometheus endpoint: the gRPC calls under the grpc-ecosystem names, the database's
state; /metrics only; a scrape and the example alert rules as promtool checks them."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.load import OK, grpc_create
from tests.e2e.promtool import ROOT, promtool
from tests.e2e.service import ServiceProcess, free_port, http

ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
CREATE = (
    'grpc_method="CreateConversation",grpc_service="conversations.v4.ConversationService",'
    'grpc_type="unary"'
)


def test_metrics_count_calls_by_method_and_code(tmp_path: Path) -> None:
    port = free_port()
    with ServiceProcess(tmp_path, ["--metrics-address", str(port)], demo=True) as service:
        create = grpc_create(service.address)
        outcomes = [create("first")[0], create("second")[0], create("")[0]]
        scraped = http("GET", f"http://127.0.0.1:{port}/metrics")
        elsewhere = [
            http("GET", f"http://127.0.0.1:{port}{path}").status
            for path in ("/", "/healthz", "/metrics/", "/favicon.ico")
        ]

    assert outcomes == [OK, OK, "INVALID_ARGUMENT"]
    assert scraped.status == 200
    lines = scraped.body.decode().splitlines()
    assert f"grpc_server_started_total{{{CREATE}}} 3.0" in lines
    assert f'grpc_server_handled_total{{grpc_code="OK",{CREATE}}} 2.0' in lines
    assert f'grpc_server_handled_total{{grpc_code="INVALID_ARGUMENT",{CREATE}}} 1.0' in lines
    assert f'grpc_server_handling_seconds_count{{grpc_code="OK",{CREATE}}} 2.0' in lines
    assert f"grpc_server_in_flight_calls{{{CREATE}}} 0.0" in lines
    # A method no one called is listed, at 0, under its type.
    assert (
        'grpc_server_started_total{grpc_method="Watch",grpc_service="grpc.health.v1.Health",'
        'grpc_type="server_stream"} 0.0'
    ) in lines
    assert not any(line.startswith("conversation_service_calls") for line in lines)
    assert "conversation_service_database_up 1.0" in lines
    assert elsewhere == [404, 404, 404, 404]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in service.log()
    checked = promtool("check", "metrics", text=scraped.body.decode())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_example_alert_rules_are_valid_and_fire_as_documented() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    tested = promtool("test", "rules", str(ALERTS.with_name("alerts.test.yml")))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, demo=True) as service:
        log = service.log()
    assert "metrics on" not in log
