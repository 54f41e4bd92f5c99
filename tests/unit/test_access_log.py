"""The access log line: the call's fields, as json.dumps writes them."""

from __future__ import annotations

import json

import grpc
import pytest

from server.api.observers import (
    HEALTH_CHECK,
    HEALTH_CHECKER,
    AccessLogInterceptor,
    _call_metadata,
)
from server.logs import CallIds, Fields, call_ids


@pytest.mark.parametrize(
    "ids",
    [
        None,
        CallIds("3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21", None),
        CallIds("req-1", "4bf92f3577b34da6a3ce929d0e0e4736"),
        CallIds('a "quoted" \\ id \u2028 é \x00', None),  # not what identify_call keeps
    ],
)
def test_the_line_is_what_json_dumps_writes(ids: CallIds | None) -> None:
    lines: list[Fields] = []
    method = "/conversations.v4.ConversationService/GetConversation"
    observer = AccessLogInterceptor(write=lines.append).observing(method, "unary")
    token = call_ids.set(ids)
    try:
        observer.end(grpc.StatusCode.NOT_FOUND, 0.0012344)
    finally:
        call_ids.reset(token)

    assert [json.dumps(line) for line in lines] == [
        json.dumps(
            {
                "message": "/conversations.v4.ConversationService/GetConversation NOT_FOUND",
                "event": "rpc",
                "method": "/conversations.v4.ConversationService/GetConversation",
                "code": "NOT_FOUND",
                "duration_ms": 1.234,
                "request_id": ids and ids.request_id,
                "trace_id": ids and ids.trace_id,
            }
        )
    ]


def test_the_health_checks_of_the_service_own_envoy_are_not_logged() -> None:
    lines: list[Fields] = []
    observer = AccessLogInterceptor(write=lines.append).observing(HEALTH_CHECK, "unary")
    token = _call_metadata.set((HEALTH_CHECKER,))
    try:
        observer.end(grpc.StatusCode.OK, 0.001)
    finally:
        _call_metadata.reset(token)
    observer.end(grpc.StatusCode.OK, 0.001)  # anyone else's

    assert [line["method"] for line in lines] == [HEALTH_CHECK]
