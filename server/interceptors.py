"""Server interceptors: a base that wraps each method's handler once; the call observers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias, cast

import grpc

access_log = logging.getLogger("conversation_service.access")


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# What an interceptor's continuation does: find the handler of a call, if any.
HandlerLookup = Callable[[grpc.HandlerCallDetails], "Handler | None"]

# What an observer is told of each call: method, status code, seconds taken.
Observe = Callable[[str, grpc.StatusCode, float], None]


def _finish_call(
    observe: Observe, method: str, context: grpc.ServicerContext, started: float, failed: bool
) -> None:
    # code() is in grpcio's servicer context but not in its type stubs.
    code = cast(Any, context).code()
    if code is None:
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    observe(method, code, time.perf_counter() - started)


def _unary_response(
    observe: Observe, method: str, behavior: Callable[..., Any]
) -> Callable[..., Any]:
    def logged(request: Any, context: grpc.ServicerContext) -> Any:
        started, failed = time.perf_counter(), True
        try:
            response = behavior(request, context)
            failed = False
            return response
        finally:
            _finish_call(observe, method, context, started, failed)

    return logged


def _stream_response(
    observe: Observe, method: str, behavior: Callable[..., Any]
) -> Callable[..., Any]:
    def logged(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started, failed = time.perf_counter(), True
        try:
            yield from behavior(request, context)
            failed = False
        finally:
            _finish_call(observe, method, context, started, failed)

    return logged


class WrappingInterceptor(grpc.ServerInterceptor):
    """Wraps the handler of each method it applies to, building each wrapper once.

    intercept_service runs on grpcio's one polling thread, the server's busiest,
    for every call: it only looks the wrapper up.
    """

    def __init__(self) -> None:
        # method -> (the handler found, the one wrapping it)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def applies_to(self, method: str) -> bool:
        return True

    def _wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: HandlerLookup,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies_to(method):
            return handler
        found, wrapped = self._wrapped.get(method, (None, None))
        if found is not handler or wrapped is None:
            wrapped = self._wrap(method, handler)
            self._wrapped[method] = (handler, wrapped)
        return wrapped


class CallObserver(WrappingInterceptor):
    """Tells observe() the method, status code and duration of every call."""

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        raise NotImplementedError

    def _wrap(self, method: str, handler: Handler) -> Handler:
        kinds = {
            "unary_unary": (grpc.unary_unary_rpc_method_handler, _unary_response),
            "stream_unary": (grpc.stream_unary_rpc_method_handler, _unary_response),
            "unary_stream": (grpc.unary_stream_rpc_method_handler, _stream_response),
            "stream_stream": (grpc.stream_stream_rpc_method_handler, _stream_response),
        }
        for attribute, (make_handler, wrap) in kinds.items():
            behavior = getattr(handler, attribute)
            if behavior is not None:
                return make_handler(
                    wrap(self.observe, method, behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


class AccessLogInterceptor(CallObserver):
    """Logs method, status code and duration of every call as one JSON line."""

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        access_log.info(
            json.dumps(
                {
                    "event": "rpc",
                    "method": method,
                    "code": code.name,
                    "duration_ms": round(seconds * 1000, 3),
                }
            )
        )
