"""A call's ids: Envoy's x-request-id (or a new one) and the trace id of its traceparent."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from server.api.observers import identify_call
from server.logs import CallIds, CallIdsFilter, JsonLines, TextLines, call_ids

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_ids_come_from_the_request_id_and_traceparent_metadata() -> None:
    ids = identify_call([("x-request-id", "abc-123"), ("traceparent", TRACEPARENT)])

    assert ids == CallIds("abc-123", TRACE_ID)


def test_a_call_without_a_request_id_gets_a_new_uuid_and_no_trace() -> None:
    ids = identify_call([("user-agent", "grpc-python")])

    parsed = uuid.UUID(ids.request_id)
    assert (parsed.version, str(parsed)) == (4, ids.request_id)
    assert ids.trace_id is None


def test_new_request_ids_are_distinct_version_4_uuids() -> None:
    ids = [identify_call(()).request_id for _ in range(50_000)]

    assert len(set(ids)) == len(ids)
    for request_id in ids[:1000]:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, request_id)


def test_a_malformed_or_empty_traceparent_gives_no_trace_id() -> None:
    for value in ("00-xyz-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01", ""):
        assert identify_call([("traceparent", value)]).trace_id is None


@pytest.mark.parametrize("plain", ["a", "order-42.retry:1", "A_b.c:d-e", "r" * 64])
def test_a_short_plain_request_id_is_kept(plain: str) -> None:
    assert identify_call([("x-request-id", plain)]).request_id == plain


@pytest.mark.parametrize(
    "hostile",
    [
        "r" * 65,
        "r" * 8000,
        "abc\nCRITICAL server.app FAKE: admin key rotated",
        "\x1b[2Jabc",
        'a b "c" trace_id=0af7651916cd43dd8448eb211c80319c',
        "é",
        "",
    ],
)
def test_any_other_request_id_is_replaced_by_a_new_uuid(hostile: str) -> None:
    request_id = identify_call([("x-request-id", hostile)]).request_id

    assert str(uuid.UUID(request_id)) == request_id


def format_line(message: str, formatter: logging.Formatter) -> str:
    record = logging.LogRecord("server.x", logging.ERROR, __file__, 1, message, (), None)
    CallIdsFilter().filter(record)
    return formatter.format(record)


def test_a_line_logged_during_a_call_names_it() -> None:
    token = call_ids.set(CallIds("abc-123", TRACE_ID))
    try:
        text = format_line("CreateConversation failed", TextLines())
        fields = json.loads(format_line("CreateConversation failed", JsonLines()))
    finally:
        call_ids.reset(token)

    assert text.endswith(
        f"ERROR server.x request_id=abc-123 trace_id={TRACE_ID} CreateConversation failed"
    )
    assert (fields["request_id"], fields["trace_id"]) == ("abc-123", TRACE_ID)
    assert (fields["level"], fields["logger"]) == ("error", "server.x")


def test_a_line_logged_outside_a_call_has_no_ids() -> None:
    assert format_line("stopped", TextLines()).endswith("ERROR server.x stopped")
    assert "request_id" not in json.loads(format_line("stopped", JsonLines()))
