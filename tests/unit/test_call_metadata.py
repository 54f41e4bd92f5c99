"""call_metadata: a call's metadata read once by the call observers, and each call's its own."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from server.api.interceptors import Method
from server.api.observers import CallObservers, Metadata, call_metadata


class Observer:
    def observing(self, method: str, call_type: str) -> Observer:
        return self

    def begin(self, metadata: Metadata) -> None:
        pass

    def end(self, code: grpc.StatusCode, seconds: float) -> None:
        pass


class Context:
    """What the wrappers ask of a grpc.aio servicer context; counts the metadata reads."""

    def __init__(self, metadata: Metadata) -> None:
        self.metadata, self.reads = tuple(metadata), 0

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        self.reads += 1
        return self.metadata

    def code(self) -> grpc.StatusCode | None:
        return None


async def seen(request: Any, context: Any) -> list[Metadata]:
    await asyncio.sleep(0)  # the other call runs meanwhile
    return [call_metadata(context), call_metadata(context)]


def test_each_call_reads_its_metadata_once_and_sees_its_own() -> None:
    method = Method.of("/a.Service/M", grpc.unary_unary_rpc_method_handler(seen))
    behavior: Any = CallObservers(Observer()).wrap(method).call
    first, second = Context([("x-request-id", "a")]), Context([("x-request-id", "b")])

    async def both() -> list[list[Metadata]]:
        return list(await asyncio.gather(behavior(None, first), behavior(None, second)))

    answers = asyncio.run(both())

    assert answers == [[first.metadata] * 2, [second.metadata] * 2]
    assert (first.reads, second.reads) == (1, 1)


def test_without_the_observers_the_context_is_asked() -> None:
    context = Context([("authorization", "Basic x")])

    assert asyncio.run(seen(None, context)) == [context.metadata] * 2
    assert context.reads == 2
