"""InterceptedServer: every handler registered through it comes wrapped, once."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from server.api.errors import Context
from server.api.interceptors import Handler, InterceptedServer, Method


class Tagging:
    """Appends its tag to the response: shows which wrappers ran, and in what order."""

    def __init__(self, tag: str, prefix: str = "/") -> None:
        self.tag, self.prefix, self.wrapped = tag, prefix, 0

    def wrap(self, method: Method) -> Method:
        if not method.name.startswith(self.prefix):
            return method
        self.wrapped += 1
        call = method.call

        async def tagged(request: Any, context: Context) -> Any:
            return await call(request, context) + self.tag

        return method.serving(tagged)


class Registered:
    """What a grpc.aio server is told by the generated add_*_to_server functions."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.by_service: dict[str, dict[str, Handler]] = {}

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        self.by_service[service] = handlers


async def echo(request: str, context: Any) -> str:
    return request


def register(intercepted: InterceptedServer) -> None:
    """What a generated add_*_to_server function does."""
    handlers: dict[str, Handler] = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    intercepted.registrar.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("a.Service", handlers),)
    )
    intercepted.registrar.add_registered_method_handlers("a.Service", handlers)


def answer(handler: Handler | None) -> str:
    assert handler is not None and handler.unary_unary is not None
    behavior: Any = handler.unary_unary  # a coroutine function, not as typed
    return str(asyncio.run(behavior("x", None)))


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method, self.invocation_metadata = method, ()


def test_both_registrations_are_wrapped_once_the_first_interceptor_outermost() -> None:
    server = Registered()
    outer, inner, elsewhere = Tagging("1"), Tagging("2"), Tagging("3", prefix="/other.")
    intercepted = InterceptedServer(server, [outer, inner, elsewhere])  # type: ignore[arg-type]

    register(intercepted)
    by_lookup = [server.generic[0].service(Details("/a.Service/Echo")) for _ in range(3)]

    assert answer(server.by_service["a.Service"]["Echo"]) == "x21"
    assert all(answer(handler) == "x21" for handler in by_lookup)
    assert (outer.wrapped, inner.wrapped, elsewhere.wrapped) == (1, 1, 0)
    assert server.generic[0].service(Details("/a.Service/Missing")) is None
