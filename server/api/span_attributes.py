"""The call's span gets what the instrumentation cannot know: the organisation asked for."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from server.api.errors import Context
from server.api.interceptors import ServiceInterceptor

ORGANISATION = "conversations.organisation"


class SpanAttributesInterceptor(ServiceInterceptor):
    """Sets the organisation (the request's trkref) on the span of every call under
    `prefix`; runs inside the OpenTelemetry interceptor, whose span is current. Never a
    credential nor a question's text."""

    def wrap_unary(self, behavior: Any) -> Any:
        async def attributed(request: Any, context: Context) -> Any:
            trkref = getattr(request, "trkref", "")
            if trkref:
                trace.get_current_span().set_attribute(ORGANISATION, trkref)
            return await behavior(request, context)

        return attributed
