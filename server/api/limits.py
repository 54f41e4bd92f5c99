"""The concurrency limit: calls over their budget of calls at once are refused at once."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from server.api.errors import Context, abort_retryable
from server.api.interceptors import Method


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


class ConcurrencyLimit:
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

    def wrap(self, method: Method) -> Method:
        budget = self.streams if method.streaming else self.calls
        refused, name, call = self._refused, method.name, method.call

        async def limited(request: object, context: Context) -> object:
            if not budget.take():
                refused(name, budget.name)
                await abort_retryable(context, grpc.StatusCode.RESOURCE_EXHAUSTED, REFUSED_DETAILS)
            try:
                return await call(request, context)
            finally:
                budget.give_back()

        return method.serving(limited)
