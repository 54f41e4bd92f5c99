"""Requests Envoy answered itself: a 4xx is a refusal, a 5xx a failure."""

from __future__ import annotations

import logging

import pytest

from server.serving import log_envoy_refusal

OVER_THE_BUFFER = {
    "status": 500,
    "grpc_status": 2,
    "reason": "grpc_json_transcode_failure{response_buffer_size_limit_reached}",
    "method": "GET",
    "path": "/v4/conversations/1?trkref=D10",
}


def test_a_response_envoy_could_not_send_is_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="conversation_service.access"):
        log_envoy_refusal(OVER_THE_BUFFER)
        log_envoy_refusal({**OVER_THE_BUFFER, "status": 404, "reason": "route_not_found"})
    assert [(r.levelno, r.msg["status"]) for r in caplog.records] == [  # type: ignore[index]
        (logging.ERROR, 500),
        (logging.INFO, 404),
    ]
    assert caplog.records[0].msg["message"] == "GET /v4/conversations/1?trkref=D10 500"  # type: ignore[index]
