"""Authentication of calls: HTTP Basic credentials (an API key) checked by one interceptor.

REST clients send `Authorization: Basic base64(key:secret)`, which Envoy passes
on as the `authorization` metadata; gRPC clients send the same metadata.

A failed authentication is counted against the client's address: the peer of
the call, or for a call that came through the service's own Envoy (over a unix
socket, which no one else reaches) the address Envoy appended to
`x-forwarded-for`. A client sending that header straight to the gRPC port
changes nothing: there the peer decides.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
from collections.abc import Iterable
from typing import Any, NoReturn

from server.api.errors import Context, abort_with_error
from server.api.interceptors import Method
from server.api.observers import call_metadata
from server.service.authentication import Authenticator
from server.service.domain import Caller
from server.service.errors import TooManyFailedAuthentications, Unauthenticated

_current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    """The caller the interceptor authenticated for this call."""
    try:
        return _current_caller.get()
    except LookupError:
        raise Unauthenticated() from None


def authorization(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The one `authorization` metadata value; Unauthenticated when absent or repeated."""
    values = [v for k, v in metadata if k == "authorization" and isinstance(v, str)]
    if len(values) != 1:
        raise Unauthenticated()
    return values[0]


def parse_basic(header: str) -> tuple[str, str]:
    """(key id, secret) from an `authorization` value; Unauthenticated unless HTTP Basic."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Unauthenticated()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated() from None
    key_id, colon, secret = decoded.partition(":")
    if not colon or not key_id or not secret:
        raise Unauthenticated()
    return key_id, secret


def client_address(context: Context) -> str:
    """Where a call comes from, as failed authentications are counted: an IP address, or
    `unix:` for a call through a local socket that carries no forwarded address."""
    peer = context.peer() or ""
    if peer.startswith("unix:"):
        forwarded = [
            v for k, v in call_metadata(context) if k == "x-forwarded-for" and isinstance(v, str)
        ]
        # Envoy appends the address it took the request from, after any the client sent.
        last = forwarded[-1].rsplit(",", 1)[-1].strip() if forwarded else ""
        return last or "unix:"
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        address = address.rsplit(":", 1)[0]  # without the port
        return address.strip("[]")
    return peer


class AuthInterceptor:
    """Authenticates every call of the methods under `prefix`; the rest (health) stays open."""

    # Headers remembered at most; all are forgotten when there would be more.
    MAX_REMEMBERED = 10_000

    def __init__(
        self,
        authenticator: Authenticator,
        prefix: str,
        failed_delay: float = 0.0,
        max_delayed: int = 0,
    ) -> None:
        self._prefix = prefix
        self._authenticator = authenticator
        # Seconds a failed authentication waits for its answer once its address is past
        # its allowance of failures; at most `max_delayed` wait at once (0: no bound),
        # so that waiting failures never take every call the process serves at once.
        self._failed_delay, self._max_delayed = failed_delay, max_delayed
        self._delayed = 0
        # The callers of `authorization` values verified before: the same value is the
        # same credentials, so a client's later calls skip decoding and hashing them.
        self._callers: dict[str, Caller] = {}

    def wrap(self, method: Method) -> Method:
        if not method.name.startswith(self._prefix):
            return method
        call = method.call

        async def authenticated(request: Any, context: Context) -> Any:
            try:
                header = authorization(call_metadata(context))
                caller = self._callers.get(header)
                if caller is None or not self._authenticator.admit(caller):
                    caller = await self._new_caller(header, context)
            except (Unauthenticated, TooManyFailedAuthentications) as error:
                await self._refuse(context, error)
            except Exception as error:  # a domain error, or one of the database, or a bug
                await abort_with_error(context, error, "authentication")
            token = _current_caller.set(caller)
            try:
                return await call(request, context)
            finally:
                _current_caller.reset(token)

        return method.serving(authenticated)

    async def _refuse(
        self, context: Context, error: Unauthenticated | TooManyFailedAuthentications
    ) -> NoReturn:
        """Answer a failed authentication, counted against the client's address: past its
        allowance, only after the failed delay, so that a client holding many calls open
        gets few answers a second and leaves the event loop to the others."""
        past_allowance = self._authenticator.failed(client_address(context))
        room = not self._max_delayed or self._delayed < self._max_delayed
        if past_allowance and self._failed_delay and room:
            self._delayed += 1
            try:
                await asyncio.sleep(self._failed_delay)
            finally:
                self._delayed -= 1
        await abort_with_error(context, error, "authentication")

    async def _new_caller(self, header: str, context: Context) -> Caller:
        """Who presents this `authorization` value, not seen before (or forgotten, or not
        checked lately), within the key's rate limit. A value seen before is looked up
        without a coroutine."""
        self._callers.pop(header, None)
        credentials = parse_basic(header)
        address = client_address(context)
        # A key seen before is checked in memory; a new one is read in a thread.
        caller = self._authenticator.remembered(*credentials, address)
        if caller is None:
            caller = await asyncio.to_thread(
                self._authenticator.authenticate, *credentials, address
            )
        if len(self._callers) >= self.MAX_REMEMBERED:
            self._callers.clear()
        self._callers[header] = caller
        return caller
