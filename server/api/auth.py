"""Authentication of calls: HTTP Basic credentials (an API key) checked by one interceptor.

REST clients send `Authorization: Basic base64(key:secret)`, which Envoy passes
on as the `authorization` metadata; gRPC clients send the same metadata.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
from collections.abc import Iterable
from typing import Any

import grpc

from server.api.errors import Context, abort_with_error
from server.api.interceptors import Handler, WrappingInterceptor, call_metadata
from server.service.authentication import Authenticator
from server.service.domain import Caller
from server.service.errors import DomainError, Unauthenticated

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


class AuthInterceptor(WrappingInterceptor):
    """Authenticates every call of the methods under `prefix`; the rest (health) stays open."""

    # Headers remembered at most; all are forgotten when there would be more.
    MAX_REMEMBERED = 10_000

    def __init__(self, authenticator: Authenticator, prefix: str) -> None:
        self._authenticator = authenticator
        self._prefix = prefix
        # The callers of `authorization` values verified before: the same value is the
        # same credentials, so a client's later calls skip decoding and hashing them.
        self._callers: dict[str, Caller] = {}

    def applies_to(self, method: str) -> bool:
        return method.startswith(self._prefix)

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is None:
            raise TypeError("only unary-unary methods are authenticated")
        behavior: Any = handler.unary_unary  # a coroutine function, not as typed

        async def authenticated(request: Any, context: Context) -> Any:
            try:
                header = authorization(call_metadata(context))
                caller = self._callers.get(header)
                if caller is None:
                    caller = await self._new_caller(header)
                else:
                    self._authenticator.admit(caller)
            except DomainError as error:
                await abort_with_error(context, error)
            token = _current_caller.set(caller)
            try:
                return await behavior(request, context)
            finally:
                _current_caller.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            authenticated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _new_caller(self, header: str) -> Caller:
        """Who presents this `authorization` value, not seen before (or forgotten), within
        the key's rate limit. A value seen before is looked up without a coroutine."""
        credentials = parse_basic(header)
        # A key seen before is checked in memory; a new one is read in a thread.
        caller = self._authenticator.remembered(*credentials)
        if caller is None:
            caller = await asyncio.to_thread(self._authenticator.authenticate, *credentials)
        if len(self._callers) >= self.MAX_REMEMBERED:
            self._callers.clear()
        self._callers[header] = caller
        return caller
