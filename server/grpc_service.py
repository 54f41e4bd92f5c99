"""The gRPC servicer: protobuf messages in and out, one use case per RPC."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server import conversations, domain
from server.auth import current_caller
from server.domain import Caller
from server.errors import FieldViolation, InvalidConversation
from server.grpc_errors import Context, maps_domain_errors

IDEMPOTENCY_KEY = "idempotency-key"
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ConversationService"].full_name


class ConversationService(pb_grpc.ConversationServiceServicer):
    def __init__(self, caller: Callable[[], Caller] = current_caller) -> None:
        # Who calls: set by the AuthInterceptor; tests of the servicer alone pass their own.
        self._caller = caller

    @maps_domain_errors
    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Context
    ) -> pb.Conversation:
        new = domain.NewConversation(
            trkref=request.trkref,
            first_name=request.first_name,
            question=request.question,
            sku=request.sku,
            locale=request.locale if request.HasField("locale") else None,
            request_id=_request_id(request, context),
        )
        return conversation_message(await conversations.create_conversation(new, self._caller()))


def _request_id(request: pb.CreateConversationRequest, context: Context) -> str | None:
    """The request_id field, or the Idempotency-Key header REST clients may send instead."""
    headers = [v for k, v in context.invocation_metadata() or () if k == IDEMPOTENCY_KEY]
    header = headers[0] if headers and isinstance(headers[0], str) else ""
    if request.request_id and header and header != request.request_id:
        raise InvalidConversation(
            [FieldViolation("request_id", "differs from the Idempotency-Key header")]
        )
    return request.request_id or header or None


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timestamp(value: datetime.datetime) -> Timestamp:
    # What Timestamp.FromDatetime gives, at a fraction of its cost on the hot path.
    since = value - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def answer_message(answer: domain.Answer) -> pb.Answer:
    return pb.Answer(
        id=answer.id,
        response=answer.response,
        created_at=_timestamp(answer.created_at),
        first_name=answer.first_name,
        town=answer.town,
        job_title=answer.job_title,
        reviewer_segment=answer.reviewer_segment,
        helpful=answer.helpful,
        unhelpful=answer.unhelpful,
        review_url=answer.review_url,
        review_locale=answer.review_locale,
        reviewer_facebook_url=answer.reviewer_facebook_url,
        response_type=answer.response_type,
        retailer_name=answer.retailer_name,
        retailer_image_url=answer.retailer_image_url,
    )


def conversation_message(conversation: domain.Conversation) -> pb.Conversation:
    return pb.Conversation(
        id=conversation.id,
        first_name=conversation.first_name,
        question=conversation.question,
        created_at=_timestamp(conversation.created_at),
        helpful=conversation.helpful,
        unhelpful=conversation.unhelpful,
        embeddable=conversation.embeddable,
        retailer_locale=conversation.retailer_locale,
        answers=[answer_message(a) for a in conversation.answers] or None,
    )
