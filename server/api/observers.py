"""The call observers: the access log and the metrics told of every call as it starts and as
it ends, behind one wrapper, which reads each call's metadata once for every other."""

from __future__ import annotations

import asyncio
import contextvars
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol, cast

import grpc

from server.api.errors import Context
from server.api.interceptors import Method
from server.logs import CallIds, Fields, call_ids, log_access

Metadata = Iterable[tuple[str, str | bytes]]

# The metadata of the call being served, as the observers' wrapper read it: grpc.aio
# builds the whole tuple again at each invocation_metadata(), and the access log, the
# authentication and the servicer each need it.
_call_metadata: contextvars.ContextVar[Metadata | None] = contextvars.ContextVar(
    "call_metadata", default=None
)


def call_metadata(context: Context) -> Metadata:
    """The invocation metadata of the call being served: as the call observers read it
    once, or from `context` where none did."""
    metadata = _call_metadata.get()
    return context.invocation_metadata() or () if metadata is None else metadata


class MethodObserver(Protocol):
    """What an observer does with each call of one method."""

    def begin(self, metadata: Metadata) -> None: ...

    def end(self, code: grpc.StatusCode, seconds: float) -> None: ...


class CallObserver(Protocol):
    """An observer of calls: what it does with each method's calls, bound once per method."""

    def observing(self, method: str, call_type: str) -> MethodObserver: ...


def call_type(method: Method) -> str:
    """The kind of a method as gRPC's metrics name it: unary, client_stream,
    server_stream or bidi_stream."""
    if method.request_streaming:
        return "bidi_stream" if method.response_streaming else "client_stream"
    return "server_stream" if method.response_streaming else "unary"


def status_code(context: Context, failed: BaseException | None) -> grpc.StatusCode:
    """The status code a call ended with, `failed` the exception that ended it, if any."""
    code = context.code()
    if code is not None:
        return code
    if failed is None:
        return grpc.StatusCode.OK
    if isinstance(failed, asyncio.CancelledError):  # its deadline passed, or the client left
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class CallObservers:
    """Tells every observer of each call as it starts (with its metadata) and as it ends
    (its status code and duration), in order.

    One wrapper for all of them, outermost: one layer of coroutine and one clock
    reading a call, and the metadata read once for the wrappers inside it.
    """

    def __init__(self, *observers: CallObserver) -> None:
        self._observers = observers

    def wrap(self, method: Method) -> Method:
        kind = call_type(method)
        observing = tuple(observer.observing(method.name, kind) for observer in self._observers)
        call = method.call

        async def observed(request: object, context: Context) -> object:
            metadata = context.invocation_metadata() or ()
            _call_metadata.set(metadata)
            for each in observing:
                each.begin(metadata)
            started, failed = time.perf_counter(), None
            try:
                return await call(request, context)
            except BaseException as error:
                failed = error
                raise
            finally:
                code, seconds = status_code(context, failed), time.perf_counter() - started
                for each in observing:
                    each.end(code, seconds)

        return method.serving(observed)


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


def identify_call(metadata: Metadata, trace_id_of: TraceIdOf = traceparent_trace_id) -> CallIds:
    """The call's ids: its x-request-id (a new random UUID when it has none, or one that
    is not plain) and trace id."""
    # Only binary (-bin) metadata has bytes values, and neither id is binary.
    headers = cast(dict[str, str], dict(metadata))
    request_id = headers.get(REQUEST_ID, "")
    if not PLAIN_REQUEST_ID.fullmatch(request_id):
        # A random UUID whose bits come from `random`, seeded from the system once (and
        # again in a forked child), not a read of the system's randomness per call as
        # uuid.uuid4()'s: a request id need not be unpredictable.
        request_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
    return CallIds(request_id, trace_id_of(headers))


class AccessLogInterceptor:
    """Logs method, status code, duration and ids of every call as one line; gives every
    other log line of the call its ids (call_ids). `write` takes the line's fields to the
    log (logs.access_writer() skips logging's records)."""

    def __init__(
        self,
        trace_id_of: TraceIdOf = traceparent_trace_id,
        write: Callable[[Fields], None] = log_access,
    ) -> None:
        self._trace_id_of = trace_id_of
        self._write = write

    def observing(self, method: str, call_type: str) -> MethodObserver:
        return _MethodLog(method, self._trace_id_of, self._write)


class _MethodLog:
    """The access log of one method's calls."""

    def __init__(self, method: str, trace_id_of: TraceIdOf, write: Callable[[Fields], None]):
        self._method, self._trace_id_of, self._write = method, trace_id_of, write
        self._health_check = method == HEALTH_CHECK

    def begin(self, metadata: Metadata) -> None:
        call_ids.set(identify_call(metadata, self._trace_id_of))

    def end(self, code: grpc.StatusCode, seconds: float) -> None:
        if self._health_check and HEALTH_CHECKER in (_call_metadata.get() or ()):
            return  # the service's own Envoy, every second
        ids = call_ids.get()
        self._write(
            {
                "message": f"{self._method} {code.name}",
                "event": "rpc",
                "method": self._method,
                "code": code.name,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": None if ids is None else ids.request_id,
                "trace_id": None if ids is None else ids.trace_id,
            }
        )
