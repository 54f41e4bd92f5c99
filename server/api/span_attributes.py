"""The call's span gets what the instrumentation cannot know: the organisation asked for."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import trace

from server.api.errors import Context
from server.api.interceptors import Handler, WrappingInterceptor

ORGANISATION = "conversations.organisation"


class SpanAttributesInterceptor(WrappingInterceptor):
    """Sets the organisation (the request's trkref) on the span of every call under
    `prefix`; runs inside the OpenTelemetry interceptor, whose span is current. Never a
    credential nor a question's text."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def applies_to(self, method: str) -> bool:
        return method.startswith(self._prefix)

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is None:
            return handler
        behavior: Any = handler.unary_unary  # a coroutine function, not as typed

        async def attributed(request: Any, context: Context) -> Any:
            trkref = getattr(request, "trkref", "")
            if trkref:
                trace.get_current_span().set_attribute(ORGANISATION, trkref)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            attributed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
