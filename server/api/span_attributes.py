"""The call's span gets what the instrumentation cannot know: the organisation asked for."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from server.api.errors import Context
from server.api.interceptors import Method

ORGANISATION = "conversations.organisation"


class SpanAttributesInterceptor:
    """Sets the organisation (the request's trkref) on the span of every call under
    `prefix`; runs inside the OpenTelemetry interceptor, whose span is current. Never a
    credential nor a question's text."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def wrap(self, method: Method) -> Method:
        if not method.name.startswith(self._prefix):
            return method
        call = method.call

        async def attributed(request: Any, context: Context) -> Any:
            trkref = getattr(request, "trkref", "")
            if trkref:
                trace.get_current_span().set_attribute(ORGANISATION, trkref)
            return await call(request, context)

        return method.serving(attributed)
