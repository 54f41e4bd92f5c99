"""The end of serving: calls that arrive while the server stops are answered UNAVAILABLE.

grpc's shutdown cancels the calls that have reached the server but no handler
yet: their clients see CANCELLED, which they may not retry, and no log line. So
before the server stops, `Draining` holds every new call of the service in its
handler, where grpc has handed it over, until the calls in flight have ended and
no call has come or ended for QUIET seconds (each client then waits on a held call);
the server then stops (its GOAWAY sends later calls elsewhere), and the held
calls are answered UNAVAILABLE, logged as every call is.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from server.api.errors import Context, abort_retryable
from server.api.interceptors import Method


class Draining:
    """Counts the service's calls in flight; once hold() is called, holds new ones until
    release(), then answers them UNAVAILABLE."""

    # Seconds without a call arriving or ending before stopping: a client answered last
    # sends its next call within it, to be held rather than cut off by the stop.
    QUIET = 0.25
    # Seconds between looks at the calls in flight.
    POLL = 0.01

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._in_flight = 0
        self._holding = False
        self._released = asyncio.Event()
        self._last_change = 0.0

    def wrap(self, method: Method) -> Method:
        if not method.name.startswith(self._prefix):
            return method
        call = method.call

        async def counted(request: Any, context: Context) -> Any:
            if self._holding:
                await self._hold(context)
            self._in_flight += 1
            try:
                return await call(request, context)
            finally:
                self._in_flight -= 1
                if self._holding:
                    self._last_change = asyncio.get_running_loop().time()

        return method.serving(counted)

    async def hold(self, seconds: float) -> None:
        """Hold every new call; return once the calls in flight have ended and no call has
        come or ended for QUIET seconds, or after `seconds`."""
        loop = asyncio.get_running_loop()
        self._holding = True
        self._last_change = loop.time()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            if self._in_flight == 0 and loop.time() - self._last_change >= self.QUIET:
                return
            await asyncio.sleep(self.POLL)

    def release(self) -> None:
        """Answer the calls held, and every later one, UNAVAILABLE."""
        self._released.set()

    async def _hold(self, context: Context) -> None:
        self._last_change = asyncio.get_running_loop().time()
        await self._released.wait()
        await abort_retryable(
            context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry the call"
        )
