"""The rich status of each domain error: RetryInfo on those a retry can pass, beside any
BadRequest, and the metadata that says the same delay to gRPC's retries and to REST."""

from __future__ import annotations

import pytest
from google.rpc import error_details_pb2, status_pb2

from server.api.errors import METADATA_BY_ERROR, RETRY_DELAY_SECONDS, to_status
from server.service.errors import (
    ConversationIdsExhausted,
    DomainError,
    FieldViolation,
    InvalidConversation,
    RateLimited,
    Reason,
    StorageUnavailable,
    TooManyFailedAuthentications,
)


def rich_status(error: DomainError) -> status_pb2.Status:
    """The google.rpc.Status the error's grpc-status-details-bin carries."""
    metadata = dict(to_status(error).trailing_metadata)
    return status_pb2.Status.FromString(metadata["grpc-status-details-bin"])


def detail_types(error: DomainError) -> list[str]:
    return [d.type_url.rsplit("/", 1)[-1] for d in rich_status(error).details]


def retry_delay(error: DomainError) -> int:
    [detail] = rich_status(error).details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    return int(info.retry_delay.seconds)


@pytest.mark.parametrize(
    "error",
    [RateLimited(), TooManyFailedAuthentications(), StorageUnavailable("database unavailable")],
)
def test_an_error_a_retry_can_pass_says_when_to_retry(error: DomainError) -> None:
    assert retry_delay(error) == RETRY_DELAY_SECONDS == 1
    assert ("retry-after", "1") in METADATA_BY_ERROR[type(error)]
    assert ("grpc-retry-pushback-ms", "1000") in METADATA_BY_ERROR[type(error)]


def test_ids_running_out_has_no_retry_info() -> None:
    assert detail_types(ConversationIdsExhausted()) == []
    assert ConversationIdsExhausted not in METADATA_BY_ERROR


def test_bad_input_keeps_its_bad_request_alone() -> None:
    violation = FieldViolation("question", Reason.REQUIRED, "is required")
    assert detail_types(InvalidConversation([violation])) == ["google.rpc.BadRequest"]
