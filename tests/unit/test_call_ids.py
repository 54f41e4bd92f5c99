"""A call's ids: Envoy's x-request-id (or a new one) and the trace id of its traceparent."""

from __future__ import annotations

import logging
import uuid

from server.api.interceptors import CallIds, RequestIds, call_ids, identify_call
from server.logs import FORMAT, CallIdsFilter

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
    new_request_id = RequestIds()
    ids = [identify_call((), new_request_id=new_request_id).request_id for _ in range(50_000)]

    assert len(set(ids)) == len(ids)
    for request_id in ids[:1000]:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, request_id)


def test_a_malformed_or_empty_traceparent_gives_no_trace_id() -> None:
    for value in ("00-xyz-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01", ""):
        assert identify_call([("traceparent", value)]).trace_id is None


def test_a_long_request_id_is_cut() -> None:
    assert len(identify_call([("x-request-id", "r" * 1000)]).request_id) == 128


def format_line(message: str) -> str:
    record = logging.LogRecord("server.x", logging.ERROR, __file__, 1, message, (), None)
    CallIdsFilter().filter(record)
    return logging.Formatter(FORMAT).format(record)


def test_a_line_logged_during_a_call_names_it() -> None:
    token = call_ids.set(CallIds("abc-123", TRACE_ID))
    try:
        line = format_line("CreateConversation failed")
    finally:
        call_ids.reset(token)

    assert line.endswith(
        f"ERROR server.x request_id=abc-123 trace_id={TRACE_ID} CreateConversation failed"
    )


def test_a_line_logged_outside_a_call_has_no_ids() -> None:
    assert format_line("stopped").endswith("ERROR server.x stopped")
