"""The one table from domain error to gRPC status (and so, through Envoy, to HTTP status)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.service.errors import (
    AnswerNotFound,
    ApiKeyNotFound,
    BlockedTermExists,
    BlockedTermNotFound,
    ConversationIdsExhausted,
    ConversationNotFound,
    DomainError,
    InvalidArgument,
    OrganisationExists,
    OrganisationNotFound,
    PermissionDenied,
    RateLimited,
    RequestIdReused,
    StorageFailed,
    StorageUnavailable,
    TooManyFailedAuthentications,
    Unauthenticated,
)

log = logging.getLogger(__name__)

# The context of a call on the grpc.aio server.
Context = grpc.aio.ServicerContext[Any, Any]

STATUS_BY_ERROR: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,  # HTTP 400
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,  # HTTP 401
    OrganisationNotFound: grpc.StatusCode.NOT_FOUND,  # HTTP 404
    ConversationNotFound: grpc.StatusCode.NOT_FOUND,  # HTTP 404
    AnswerNotFound: grpc.StatusCode.NOT_FOUND,  # HTTP 404
    ApiKeyNotFound: grpc.StatusCode.NOT_FOUND,  # HTTP 404
    BlockedTermNotFound: grpc.StatusCode.NOT_FOUND,  # HTTP 404
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,  # HTTP 403
    OrganisationExists: grpc.StatusCode.ALREADY_EXISTS,  # HTTP 409
    BlockedTermExists: grpc.StatusCode.ALREADY_EXISTS,  # HTTP 409
    RequestIdReused: grpc.StatusCode.ALREADY_EXISTS,  # HTTP 409
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,  # HTTP 429
    TooManyFailedAuthentications: grpc.StatusCode.RESOURCE_EXHAUSTED,  # HTTP 429
    ConversationIdsExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,  # HTTP 429
    StorageUnavailable: grpc.StatusCode.UNAVAILABLE,  # HTTP 503
    StorageFailed: grpc.StatusCode.INTERNAL,  # HTTP 500
}

# Seconds a client waits before it retries a call refused for the moment (a limit, the
# database, a draining server). One figure, said three ways: google.rpc.RetryInfo in the
# rich status, for gRPC clients that read it; grpc-retry-pushback-ms, which gRPC's own
# retries (a service config's retryPolicy) honour; Retry-After, for REST clients.
RETRY_DELAY_SECONDS = 1
RETRY_METADATA = (
    ("retry-after", str(RETRY_DELAY_SECONDS)),
    ("grpc-retry-pushback-ms", str(RETRY_DELAY_SECONDS * 1000)),
)
# The domain errors that go away by themselves: the same call succeeds later.
RETRYABLE_ERRORS = (RateLimited, TooManyFailedAuthentications, StorageUnavailable)

# Metadata sent with an error. Envoy turns the trailing metadata of an
# immediate error into HTTP headers: a 401 then carries WWW-Authenticate, a
# retryable error Retry-After.
METADATA_BY_ERROR: dict[type[DomainError], tuple[tuple[str, str], ...]] = {
    Unauthenticated: (("www-authenticate", 'Basic realm="Platform API v4"'),),
    **{error: RETRY_METADATA for error in RETRYABLE_ERRORS},
}


def status_code(error: DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


def to_status(error: DomainError) -> grpc.Status:
    """The rich status of an error: code, message and, for bad input, the field violations."""
    code = status_code(error)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(error))
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description, reason=v.reason
                )
                for v in error.violations
            ]
        )
        status.details.add().Pack(bad_request)
    if isinstance(error, RETRYABLE_ERRORS):
        status.details.add().Pack(retry_info())
    return rpc_status.to_status(status)


def retry_info() -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=RETRY_DELAY_SECONDS)
    )


# What a caller is told of a statement the database refused and of anything unexpected:
# the details stay in the log.
INTERNAL_ERROR = "internal error"


async def abort_with_error(context: Context, error: Exception, where: str) -> NoReturn:
    """End the call with the status of `error`, raised in `where`: a domain error's, from the
    table; a statement the database refused (StorageFailed), or anything else,
    INTERNAL `internal error`, logged."""
    if isinstance(error, DomainError) and not isinstance(error, StorageFailed):
        metadata = METADATA_BY_ERROR.get(type(error), ())
        await _abort_with_status(context, to_status(error), metadata)
    if isinstance(error, StorageFailed):
        log.error("%s failed: %s", where, error)
    else:
        log.error("unexpected error in %s", where, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)


async def abort_retryable(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with `code` (RESOURCE_EXHAUSTED or UNAVAILABLE) and `message`, telling
    the client when to retry: RetryInfo, grpc-retry-pushback-ms and Retry-After."""
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    status.details.add().Pack(retry_info())
    await _abort_with_status(context, rpc_status.to_status(status), RETRY_METADATA)


async def _abort_with_status(
    context: Context, status: grpc.Status, extra: tuple[tuple[str, str], ...]
) -> NoReturn:
    """What abort_with_status() does, spelled out, because grpcio-testing lacks it (and
    drops the trailing metadata there); `extra` joins the status's trailing metadata."""
    context.set_trailing_metadata((*status.trailing_metadata, *extra))
    await context.abort(status.code, status.details)


Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")
Method = Callable[[Servicer, Request, Context], Coroutine[Any, Any, Response]]


def maps_domain_errors(
    method: Method[Servicer, Request, Response],
) -> Method[Servicer, Request, Response]:
    """Turn what an RPC raises into its gRPC status (abort_with_error)."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Request, context: Context) -> Response:
        try:
            return await method(self, request, context)
        except Exception as error:
            await abort_with_error(context, error, method.__name__)

    return wrapper
