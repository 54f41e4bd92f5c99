"""Server interceptors, each wrapping a method's handler once, as it is registered; the call
observers and the concurrency limit."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeAlias, cast

import grpc

from server.api.errors import Context, abort_retryable

access_log = logging.getLogger("conversation_service.access")


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class CallIds(NamedTuple):
    """What ties a log line to its call: the request id, and the trace id when there is one."""

    request_id: str
    trace_id: str | None


# The ids of the call being served, for each of its log lines. Each call runs in
# an asyncio task of its own, so what a call sets here leaves with it.
call_ids: contextvars.ContextVar[CallIds | None] = contextvars.ContextVar("call_ids", default=None)

Metadata = Iterable[tuple[str, str | bytes]]

# The metadata of the call being served, as the outermost wrapper read it: grpc.aio
# builds the whole tuple again at each invocation_metadata() (a cost docs/architecture.md
# weighs), and
# the access log, the authentication and the servicer each need it.
_call_metadata: contextvars.ContextVar[Metadata | None] = contextvars.ContextVar(
    "call_metadata", default=None
)


def call_metadata(context: Context) -> Metadata:
    """The invocation metadata of the call being served: as the call observers read it
    once, or from `context` where none did."""
    metadata = _call_metadata.get()
    return context.invocation_metadata() or () if metadata is None else metadata


# Where a call's trace id comes from: its metadata, or (with tracing on) its span.
TraceIdOf = Callable[[dict[str, str]], "str | None"]

REQUEST_ID = "x-request-id"  # set by Envoy on every request it passes on
# A client's request id is kept only when it is short and plain: it is written in log
# lines and sent back over REST. Any other is replaced by a new one.
PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The metadata Envoy's own health checks carry (envoy.yaml.template): not access-logged.
HEALTH_CHECKER = ("x-health-checker", "envoy")
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# W3C Trace Context: version-traceid-parentid-flags.
TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
NO_TRACE = "0" * 32


def traceparent_trace_id(metadata: dict[str, str]) -> str | None:
    """The trace id of the call's `traceparent` metadata, when it has a valid one."""
    found = TRACEPARENT.fullmatch(metadata.get("traceparent", ""))
    return found.group(1) if found and found.group(1) != NO_TRACE else None


class RequestIds:
    """Request ids for calls that bring none: random UUIDs (version 4), drawn from a
    generator seeded once from the system's randomness, so that an id costs no system
    call. As unique as uuid.uuid4()'s; a request id need not be unpredictable."""

    def __init__(self) -> None:
        self._random = random.Random()

    def __call__(self) -> str:
        bits = self._random.getrandbits(128)
        bits = bits & ~(0xF000 << 64) | (0x4000 << 64)  # version 4
        bits = bits & ~(0xC000 << 48) | (0x8000 << 48)  # the RFC 4122 variant
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def identify_call(
    metadata: Metadata,
    trace_id_of: TraceIdOf = traceparent_trace_id,
    new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> CallIds:
    """The call's ids: its x-request-id (a new one when it has none, or one that is not
    plain) and trace id."""
    # Only binary (-bin) metadata has bytes values, and neither id is binary.
    headers = cast(dict[str, str], dict(metadata))
    request_id = headers.get(REQUEST_ID, "")
    if not PLAIN_REQUEST_ID.fullmatch(request_id):
        request_id = new_request_id()
    return CallIds(request_id, trace_id_of(headers))


# What an observer is told of each call: method, status code, seconds taken.
Observe = Callable[[str, grpc.StatusCode, float], None]
# What an observer is told as each call starts: its context.
Begin = Callable[[Context], None]


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
    begin: Begin, observe: Observe, method: str, behavior: Callable[..., Any]
) -> Callable[..., Any]:
    async def logged(request: Any, context: Context) -> Any:
        _call_metadata.set(context.invocation_metadata() or ())
        begin(context)
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
    begin: Begin, observe: Observe, method: str, behavior: Callable[..., Any]
) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        # It writes with context.write().
        return _unary_response(begin, observe, method, behavior)

    async def logged(request: Any, context: Context) -> AsyncIterator[Any]:
        _call_metadata.set(context.invocation_metadata() or ())
        begin(context)
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


# A behavior wrapped: the handler's function, and the one calling it.
Rewrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def _rewrapped(handler: Handler, unary_response: Rewrap, stream_response: Rewrap) -> Handler:
    """The handler with its behavior wrapped, by the kind of its response."""
    kinds = {
        "unary_unary": (grpc.unary_unary_rpc_method_handler, unary_response),
        "stream_unary": (grpc.stream_unary_rpc_method_handler, unary_response),
        "unary_stream": (grpc.unary_stream_rpc_method_handler, stream_response),
        "stream_stream": (grpc.stream_stream_rpc_method_handler, stream_response),
    }
    for attribute, (make_handler, wrap) in kinds.items():
        behavior = getattr(handler, attribute)
        if behavior is not None:
            return make_handler(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class WrappingInterceptor:
    """Wraps the handler of each method it applies to, once, as the method is registered
    on an InterceptedServer.

    Unlike grpc.aio's interceptors, which look each call's handler up again
    through a coroutine per interceptor, a call meets only the wrappers.
    """

    def applies_to(self, method: str) -> bool:
        return True

    def wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError


class ServiceInterceptor(WrappingInterceptor):
    """Wraps the unary-unary methods whose names start with `prefix` (the service's):
    a subclass gives wrap_unary()."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def applies_to(self, method: str) -> bool:
        return method.startswith(self._prefix)

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is None:
            raise TypeError(f"{type(self).__name__} wraps unary-unary methods only")
        return grpc.unary_unary_rpc_method_handler(
            self.wrap_unary(handler.unary_unary),  # a coroutine function, not as typed
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def wrap_unary(self, behavior: Any) -> Any:
        raise NotImplementedError


class InterceptedServer:
    """A grpc.aio server as the generated add_*_to_server functions see it: each handler
    registered through it is wrapped by every interceptor that applies to its method,
    the first interceptor outermost."""

    def __init__(
        self, server: grpc.aio.Server, interceptors: Sequence[WrappingInterceptor]
    ) -> None:
        self.server = server
        self._interceptors = tuple(interceptors)
        # method -> (the handler registered, the one wrapping it)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def wrapped(self, method: str, handler: Handler) -> Handler:
        """The handler of `method` wrapped, built once for each handler registered."""
        found, wrapped = self._wrapped.get(method, (None, None))
        if found is handler and wrapped is not None:
            return wrapped
        wrapped = handler
        for interceptor in reversed(self._interceptors):
            if interceptor.applies_to(method):
                wrapped = interceptor.wrap(method, wrapped)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @property
    def registrar(self) -> grpc.aio.Server:
        """This object, where the generated add_*_to_server functions take a server: they
        call only the two methods below."""
        return cast(grpc.aio.Server, self)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        self.server.add_registered_method_handlers(
            service, {name: self.wrapped(f"/{service}/{name}", h) for name, h in handlers.items()}
        )

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers(
            tuple(_WrappedGenericHandler(self, handler) for handler in generic_handlers)
        )


class _WrappedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose handlers come wrapped by an InterceptedServer."""

    def __init__(self, intercepted: InterceptedServer, handler: grpc.GenericRpcHandler) -> None:
        self._intercepted = intercepted
        self._handler = handler

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._handler.service(handler_call_details)
        if handler is None:
            return None
        return self._intercepted.wrapped(handler_call_details.method, handler)


class CallObserver(WrappingInterceptor):
    """Tells begin() of every call as it starts, and observe() its method, status code and
    duration as it ends."""

    def begin(self, context: Context) -> None:
        pass

    def begin_for(self, method: str, handler: Handler) -> Begin:
        """What to call as each call of `method` (served by `handler`) starts: begin(),
        unless an observer needs the method, which it then binds here, once."""
        return self.begin

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        raise NotImplementedError

    def wrap(self, method: str, handler: Handler) -> Handler:
        begin = self.begin_for(method, handler)
        return _rewrapped(
            handler,
            lambda behavior: _unary_response(begin, self.observe, method, behavior),
            lambda behavior: _stream_response(begin, self.observe, method, behavior),
        )


class CallObservers(CallObserver):
    """Several observers behind one wrapper: each is told of every call, in order.

    One interceptor instead of one per observer: each would cost the call a layer
    of coroutine and a clock reading.
    """

    def __init__(self, *observers: CallObserver) -> None:
        self._observers = observers

    def begin_for(self, method: str, handler: Handler) -> Begin:
        begins = tuple(observer.begin_for(method, handler) for observer in self._observers)

        def begin(context: Context) -> None:
            for each in begins:
                each(context)

        return begin

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        for observer in self._observers:
            observer.observe(method, code, seconds)


class AccessLogInterceptor(CallObserver):
    """Logs method, status code, duration and ids of every call as one JSON line; gives
    every other log line of the call its ids (call_ids).

    The line is the JSON object json.dumps would write, built from parts: a method's
    part once, then only the code, duration and ids are formatted per call. `write`
    takes it to the log (logs.access_writer() skips logging's records).
    """

    def __init__(
        self,
        trace_id_of: TraceIdOf = traceparent_trace_id,
        write: Callable[[str], None] = access_log.info,
    ) -> None:
        self._trace_id_of = trace_id_of
        self._write = write
        self._new_request_id = RequestIds()
        self._heads: dict[str, str] = {}  # method -> the line up to its code

    def begin(self, context: Context) -> None:
        metadata = call_metadata(context)
        call_ids.set(identify_call(metadata, self._trace_id_of, self._new_request_id))

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        if method == HEALTH_CHECK and HEALTH_CHECKER in (_call_metadata.get() or ()):
            return  # the service's own Envoy, every second
        head = self._heads.get(method)
        if head is None:
            head = self._heads[method] = f'{{"message": {json.dumps(method)[:-1]} '
        ids = call_ids.get()
        if ids is None:
            tail = '"request_id": null, "trace_id": null}'
        else:
            # The trace id is 32 hex digits or None; the request id is the caller's to choose.
            trace_id = "null" if ids.trace_id is None else f'"{ids.trace_id}"'
            tail = f'"request_id": {_json_string(ids.request_id)}, "trace_id": {trace_id}}}'
        duration = round(seconds * 1000, 3)
        self._write(
            f'{head}{code.name}", "event": "rpc", "method": {json.dumps(method)}, '
            f'"code": "{code.name}", "duration_ms": {duration!r}, {tail}'
        )


def _json_string(text: str) -> str:
    """`text` as a JSON string, as json.dumps writes it."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


class Budget:
    """Calls that may run at once (`limit`, 0 for no limit) and those running.

    Taken and given back on the event loop only: no lock.
    """

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.in_use = 0

    def take(self) -> bool:
        if self.limit and self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def give_back(self) -> None:
        self.in_use -= 1


# What a limit is told of each call it refuses: the method and the budget's name.
Refused = Callable[[str, str], None]

REFUSED_DETAILS = "the service is at its limit of calls at once; retry shortly"


def _limited_unary(budget: Budget, refused: Refused, method: str, behavior: Any) -> Any:
    async def limited(request: Any, context: Context) -> Any:
        if not budget.take():
            refused(method, budget.name)
            await abort_retryable(context, grpc.StatusCode.RESOURCE_EXHAUSTED, REFUSED_DETAILS)
        try:
            return await behavior(request, context)
        finally:
            budget.give_back()

    return limited


def _limited_stream(budget: Budget, refused: Refused, method: str, behavior: Any) -> Any:
    if not inspect.isasyncgenfunction(behavior):
        return _limited_unary(budget, refused, method, behavior)  # it writes with context.write()

    async def limited(request: Any, context: Context) -> AsyncIterator[Any]:
        if not budget.take():
            refused(method, budget.name)
            await abort_retryable(context, grpc.StatusCode.RESOURCE_EXHAUSTED, REFUSED_DETAILS)
        try:
            async for response in behavior(request, context):
                yield response
        finally:
            budget.give_back()

    return limited


class ConcurrencyLimit(WrappingInterceptor):
    """Refuses at once, with RESOURCE_EXHAUSTED, a call over its budget of calls at once.

    Streaming methods (the long-lived streams: health Watch, reflection) have a
    small budget of their own, so that holding them open never takes the budget of the
    service's calls. A call counts from the moment its request has arrived until
    it ends; `refused` is told of each refusal (the observers outside this
    interceptor log and count the call itself).
    """

    def __init__(self, max_calls: int, max_streams: int, refused: Refused) -> None:
        self.calls = Budget("max_concurrent_calls", max_calls)
        self.streams = Budget("max_streams", max_streams)
        self._refused = refused

    def wrap(self, method: str, handler: Handler) -> Handler:
        streaming = handler.request_streaming or handler.response_streaming
        budget = self.streams if streaming else self.calls
        return _rewrapped(
            handler,
            lambda behavior: _limited_unary(budget, self._refused, method, behavior),
            lambda behavior: _limited_stream(budget, self._refused, method, behavior),
        )
