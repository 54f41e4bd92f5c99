"""Server interceptors: a base that wraps each method's handler once; the call observers."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from server.api.errors import Context

access_log = logging.getLogger("conversation_service.access")


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# What an interceptor's continuation does: find the handler of a call, if any.
HandlerLookup = Callable[[grpc.HandlerCallDetails], Awaitable["Handler | None"]]

# What an observer is told of each call: method, status code, seconds taken.
Observe = Callable[[str, grpc.StatusCode, float], None]


def _finish_call(
    observe: Observe, method: str, context: Context, started: float, failed: BaseException | None
) -> None:
    code = context.code()
    if code is None:
        if failed is None:
            code = grpc.StatusCode.OK
        elif isinstance(failed, asyncio.CancelledError):  # its deadline passed, or the client left
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
        else:
            code = grpc.StatusCode.UNKNOWN
    observe(method, code, time.perf_counter() - started)


def _unary_response(
    observe: Observe, method: str, behavior: Callable[..., Any]
) -> Callable[..., Any]:
    async def logged(request: Any, context: Context) -> Any:
        started, failed = time.perf_counter(), None
        try:
            return await behavior(request, context)
        except BaseException as error:
            failed = error
            raise
        finally:
            _finish_call(observe, method, context, started, failed)

    return logged


def _stream_response(
    observe: Observe, method: str, behavior: Callable[..., Any]
) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        return _unary_response(observe, method, behavior)  # it writes with context.write()

    async def logged(request: Any, context: Context) -> AsyncIterator[Any]:
        started, failed = time.perf_counter(), None
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as error:
            failed = error
            raise
        finally:
            _finish_call(observe, method, context, started, failed)

    return logged


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the handler of each method it applies to, building each wrapper once.

    intercept_service runs for every call: it only looks the wrapper up.
    """

    def __init__(self) -> None:
        # method -> (the handler found, the one wrapping it)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def applies_to(self, method: str) -> bool:
        return True

    def _wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: HandlerLookup,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
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
