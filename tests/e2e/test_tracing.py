"""Traces end to end: a REST client's traceparent, Envoy's span, the service's, the database's,
exported over OTLP to a real receiver; and the ids on every log line of the call."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import basic, basic_authorization
from tests.e2e.browser import chromium
from tests.e2e.otlp import OtlpReceiver, ReceivedSpan
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, http
from tests.e2e.test_rest import CONVERSATIONS, SEED_BODY

# A REST client's own span, as W3C Trace Context.
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
SERVICE_SPAN = "/conversations.v4.ConversationService/CreateConversation"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[ServiceProcess]:
    """`serve` exporting to the receiver; its SDK exports every 100 ms (OTEL_BSP_*)."""
    with ServiceProcess(
        tmp_path_factory.mktemp("traced"),
        ["--otlp-endpoint", receiver.endpoint],
        rest=True,
        demo=True,
        OTEL_BSP_SCHEDULE_DELAY="100",
    ) as service:
        yield service


def create(service: ServiceProcess, **headers: str) -> dict[str, str]:
    response = http(
        "POST",
        service.base_url + CONVERSATIONS,
        json.dumps(SEED_BODY),
        {
            "content-type": "application/json",
            "authorization": basic_authorization(*DEMO_CREDENTIALS),
            **headers,
        },
    )
    assert response.status == 200
    return response.headers


def one_trace(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    """The spans of one trace, once Envoy's, the service's and the database's are in."""

    def complete(spans: list[ReceivedSpan]) -> bool:
        services = {s.service for s in spans if s.trace_id == trace_id}
        return {"conversation-service", "conversation-service-envoy"} <= services and any(
            s.span.name == "INSERT conversations" for s in spans if s.trace_id == trace_id
        )

    return [s for s in receiver.wait_for(complete) if s.trace_id == trace_id]


def test_a_rest_create_is_one_trace_of_envoy_service_and_database_spans(
    traced: ServiceProcess, receiver: OtlpReceiver, screenshots: Path
) -> None:
    headers = create(traced, traceparent=TRACEPARENT)

    spans = one_trace(receiver, CLIENT_TRACE)
    by_name = {s.span.name: s for s in spans}
    envoy = next(s for s in spans if s.service == "conversation-service-envoy")
    service, database = by_name[SERVICE_SPAN], by_name["INSERT conversations"]

    assert len(spans) == 3
    assert envoy.parent_span_id == CLIENT_SPAN
    assert service.parent_span_id == envoy.span_id
    assert database.parent_span_id == service.span_id
    assert service.attributes()["rpc.grpc.status_code"] == 0
    assert service.attributes()["rpc.method"] == "CreateConversation"
    assert service.attributes()["conversations.organisation"] == "D10"
    assert database.attributes()["db.operation.name"] == "INSERT"
    assert envoy.attributes()["guid:x-request-id"] == headers["x-request-id"]
    # Neither the question nor a credential is in any span.
    everything = json.dumps([s.attributes() for s in spans])
    assert SEED_BODY["question"] not in everything
    assert "Basic " not in everything and DEMO_CREDENTIALS[1] not in everything
    save_trace_image(spans, screenshots / "trace.png")


def test_a_grpc_caller_traceparent_is_continued_by_the_service(
    traced: ServiceProcess, receiver: OtlpReceiver
) -> None:
    trace_id, caller_span = "5af7651916cd43dd8448eb211c80319d", "c7ad6b7169203332"
    metadata = (
        *basic(*DEMO_CREDENTIALS),
        ("traceparent", f"00-{trace_id}-{caller_span}-01"),
    )
    with grpc.insecure_channel(traced.address) as channel:
        stub: Any = pb_grpc.ConversationServiceStub(channel)
        stub.CreateConversation(
            pb.CreateConversationRequest(trkref="D10", **SEED_BODY), metadata=metadata, timeout=10
        )

    spans = receiver.wait_for(
        lambda spans: sum(s.trace_id == trace_id for s in spans) >= 2, timeout=10
    )
    by_name = {s.span.name: s for s in spans if s.trace_id == trace_id}

    assert by_name[SERVICE_SPAN].parent_span_id == caller_span
    assert by_name["INSERT conversations"].parent_span_id == by_name[SERVICE_SPAN].span_id


def test_the_access_log_line_carries_the_request_and_trace_ids(
    traced: ServiceProcess, receiver: OtlpReceiver
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = create(traced, traceparent=f"00-{trace_id}-b7ad6b7169203331-01")

    lines = logged_lines(traced, headers["x-request-id"])

    assert len(lines) == 1
    logged = json.loads(lines[0])
    assert logged["trace_id"] == trace_id
    assert logged["request_id"] == headers["x-request-id"]
    assert logged["method"] == SERVICE_SPAN


def test_a_plain_request_id_that_is_no_uuid_is_kept_and_traced(
    traced: ServiceProcess, receiver: OtlpReceiver
) -> None:
    request_id = "order-42.retry:1"
    headers = create(traced, **{"x-request-id": request_id})

    [line] = logged_lines(traced, f'"request_id": "{request_id}"')
    trace_id = json.loads(line)["trace_id"]
    spans = one_trace(receiver, trace_id)

    assert headers["x-request-id"] == request_id  # as the client sent it
    envoy = next(s for s in spans if s.service == "conversation-service-envoy")
    assert envoy.attributes()["guid:x-request-id"] == request_id
    assert any(s.span.name == SERVICE_SPAN for s in spans)


def test_the_ingress_span_url_carries_no_query(
    traced: ServiceProcess, receiver: OtlpReceiver
) -> None:
    conversation = json.loads(
        http(
            "POST",
            traced.base_url + CONVERSATIONS,
            json.dumps(SEED_BODY),
            {
                "content-type": "application/json",
                "authorization": basic_authorization(*DEMO_CREDENTIALS),
            },
        ).body
    )
    vote = (
        f"/v4/conversations/{conversation['id']}/increment_helpful?trkref=D10&voter_id=shopper-77"
    )
    response = http(
        "POST",
        traced.base_url + vote,
        headers={
            "authorization": basic_authorization(*DEMO_CREDENTIALS),
            "traceparent": TRACEPARENT.replace(CLIENT_TRACE, VOTE_TRACE),
        },
    )
    assert response.status == 202, response

    spans = receiver.wait_for(
        lambda spans: any(
            s.trace_id == VOTE_TRACE and s.service == "conversation-service-envoy" for s in spans
        ),
        timeout=10,
    )
    [envoy] = [
        s for s in spans if s.trace_id == VOTE_TRACE and s.service == "conversation-service-envoy"
    ]

    url = envoy.attributes()["http.url"]
    assert url.endswith(f"/v4/conversations/{conversation['id']}/increment_helpful"), url
    everything = json.dumps([s.attributes() for s in spans if s.trace_id == VOTE_TRACE])
    assert "shopper-77" not in everything


VOTE_TRACE = "7af7651916cd43dd8448eb211c803197"


def logged_lines(service: ServiceProcess, text: str, timeout: float = 5) -> list[str]:
    """The log lines holding `text`, once there are some (access log lines come in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in service.log().splitlines() if text in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def save_trace_image(spans: list[ReceivedSpan], path: Path) -> None:
    """The trace as a table, rendered in chromium (docs/images/trace.png)."""
    start = min(s.span.start_time_unix_nano for s in spans)
    total = max(s.span.end_time_unix_nano for s in spans) - start
    depth = {CLIENT_SPAN: -1}
    rows = []
    for span in sorted(spans, key=lambda s: s.span.start_time_unix_nano):
        depth[span.span_id] = depth.get(span.parent_span_id, -1) + 1
        began, took = span.span.start_time_unix_nano - start, span.duration_ns
        shown = {k: v for k, v in span.attributes().items() if k in SHOWN_ATTRIBUTES}
        rows.append(
            f"<tr><td style='padding-left:{depth[span.span_id] * 1.5 + 0.3}em'>"
            f"{html.escape(span.span.name)}</td><td>{html.escape(span.service)}</td>"
            f"<td>{span.span_id}</td><td>{span.parent_span_id}</td><td class=bar><div style="
            f"'margin-left:{100 * began / total:.1f}%;width:{max(0.5, 100 * took / total):.1f}%'>"
            f"</div></td><td>{took / 1e6:.2f} ms</td><td>{html.escape(json.dumps(shown))}</td></tr>"
        )
    page = TRACE_PAGE.format(trace=spans[0].trace_id, parent=CLIENT_SPAN, rows="".join(rows))
    with chromium() as browser:
        tab = browser.new_page()
        tab.set_content(page)
        tab.locator("body").screenshot(path=path)


SHOWN_ATTRIBUTES = {
    "rpc.method",
    "rpc.grpc.status_code",
    "conversations.organisation",
    "db.system.name",
    "db.operation.name",
    "http.status_code",
    "guid:x-request-id",
}
TRACE_PAGE = """<!DOCTYPE html><html><head><style>
body {{ font: 13px sans-serif; margin: 12px; display: inline-block; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 6px; }}
td.bar {{ width: 240px; }} td.bar div {{ height: 12px; background: #4a90d9; }}
</style></head><body>
<p>Trace {trace}, as the OTLP receiver of tests/e2e/test_tracing.py got it (the client's
span {parent} is the REST client's traceparent)</p>
<table><tr><th>span</th><th>service.name</th><th>span id</th><th>parent</th>
<th>timeline</th><th>duration</th><th>attributes (some)</th></tr>{rows}</table>
</body></html>"""
