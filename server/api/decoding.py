"""Requests that are not valid protobuf: INVALID_ARGUMENT, logged and counted like any call.

grpcio decodes a request before any interceptor's handler runs; bytes that do not
parse would end the call UNKNOWN, with Python's exception text, unseen by the
access log and the metrics. This interceptor gives each unary method a decoder that
never raises: such a request reaches the handlers (after authentication) as
MALFORMED and is answered INVALID_ARGUMENT.
"""

from __future__ import annotations

from typing import Any

import grpc

from server.api.errors import Context
from server.api.interceptors import Method

# The request of a call whose bytes are not a message of the method's request type.
MALFORMED = object()
MALFORMED_MESSAGE = "malformed request: the body is not a protobuf message of this method's type"


class DecodingInterceptor:
    """Turns an undecodable request of a unary-unary method into INVALID_ARGUMENT.

    Put it last, innermost: the interceptors around it keep its decoder and see the call."""

    def wrap(self, method: Method) -> Method:
        decode, call = method.decode, method.call
        if decode is None or method.streaming:
            return method

        def lenient(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception:  # DecodeError, or whatever a decoder raises on bad bytes
                return MALFORMED

        async def decoded(request: Any, context: Context) -> Any:
            if request is MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_MESSAGE)
            return await call(request, context)

        return method._replace(decode=lenient, call=decoded)
