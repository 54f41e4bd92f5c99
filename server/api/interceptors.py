"""The one shape of the service's interceptors: a method in, the same method served by a
wrapper out, applied once, as the method is registered (InterceptedServer).

grpc.aio's own interceptors look each call's handler up again through a coroutine per
interceptor; here a call meets only the wrappers (docs/performance.md weighs the two).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias, cast

import grpc

from server.api.errors import Context

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# What serves one call: (request, context) -> response. A streaming response is written
# with context.write(), and a streaming request is an async iterator of messages.
Call = Callable[[Any, Context], Awaitable[Any]]

# The handler constructor of each kind of method: (request streaming, response streaming).
HANDLER_OF_KIND = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class Method(NamedTuple):
    """A method as registered, as every interceptor sees it: its full name
    (/package.Service/Name), its kind, how its messages are decoded and encoded, and the
    coroutine function that serves its calls."""

    name: str
    request_streaming: bool
    response_streaming: bool
    decode: Callable[[bytes], Any] | None
    encode: Callable[[Any], bytes] | None
    call: Call

    @classmethod
    def of(cls, name: str, handler: Handler) -> Method:
        """The method that `handler` serves; a response yielded by an async generator is
        written with context.write() instead, so that every call is a coroutine."""
        behavior = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        call: Any = behavior  # a coroutine or async generator function, not as typed
        if inspect.isasyncgenfunction(call):
            call = _written(call)
        return cls(
            name,
            handler.request_streaming,
            handler.response_streaming,
            handler.request_deserializer,
            handler.response_serializer,
            call,
        )

    @property
    def streaming(self) -> bool:
        return self.request_streaming or self.response_streaming

    def serving(self, call: Call) -> Method:
        """This method, its calls served by `call`."""
        return self._replace(call=call)

    def handler(self) -> Handler:
        """The handler grpc.aio serves this method with."""
        make = HANDLER_OF_KIND[self.request_streaming, self.response_streaming]
        return make(
            cast(Any, self.call), request_deserializer=self.decode, response_serializer=self.encode
        )


def _written(responses: Callable[[Any, Context], AsyncIterator[Any]]) -> Call:
    """A coroutine function that writes with context.write() what `responses` yields."""

    async def write(request: Any, context: Context) -> None:
        async for response in responses(request, context):
            await context.write(response)

    return write


class Interceptor(Protocol):
    """What every interceptor of the service is: a method in, the method served by a
    wrapper of its call out (or the method as it came, where the interceptor does not
    apply). Called once per method, as it is registered."""

    def wrap(self, method: Method) -> Method: ...


class InterceptedServer:
    """A grpc.aio server as the generated add_*_to_server functions see it: each handler
    registered through it is wrapped by every interceptor, the first outermost."""

    def __init__(self, server: grpc.aio.Server, interceptors: Sequence[Interceptor]) -> None:
        self.server = server
        self._interceptors = tuple(reversed(interceptors))
        # method -> (the handler registered, the one wrapping it)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def wrapped(self, name: str, handler: Handler) -> Handler:
        """The handler of method `name` wrapped, built once for each handler registered."""
        found, wrapped = self._wrapped.get(name, (None, None))
        if found is handler and wrapped is not None:
            return wrapped
        method = Method.of(name, handler)
        for interceptor in self._interceptors:
            method = interceptor.wrap(method)
        wrapped = method.handler()
        self._wrapped[name] = (handler, wrapped)
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
