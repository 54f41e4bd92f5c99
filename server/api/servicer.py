"""The gRPC servicer: protobuf messages in and out, one use case per RPC."""

from __future__ import annotations

from collections.abc import Callable

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server.api.auth import current_caller
from server.api.errors import Context, maps_domain_errors
from server.api.messages import conversation_message, page_message
from server.service import conversations, domain
from server.service.domain import Caller
from server.service.errors import FieldViolation, InvalidConversation, Reason
from server.service.ports import Storage

IDEMPOTENCY_KEY = "idempotency-key"
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ConversationService"].full_name


class ConversationService(pb_grpc.ConversationServiceServicer):
    def __init__(self, store: Storage, caller: Callable[[], Caller] = current_caller) -> None:
        self._store = store
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
        created = await conversations.create_conversation(self._store, new, self._caller())
        return conversation_message(created)

    @maps_domain_errors
    async def GetConversation(
        self, request: pb.GetConversationRequest, context: Context
    ) -> pb.Conversation:
        found = await conversations.get_conversation(
            self._store, request.trkref, request.id, self._caller()
        )
        return conversation_message(found)

    @maps_domain_errors
    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Context
    ) -> pb.ListConversationsResponse:
        asked = conversations.ListRequest(
            trkref=request.trkref,
            sku=request.sku,
            locale=request.locale if request.HasField("locale") else None,
            page_size=request.page_size,
            page_token=request.page_token,
            order_by=request.order_by,
        )
        page, token = await conversations.list_conversations(self._store, asked, self._caller())
        return page_message(page, token)


def _request_id(request: pb.CreateConversationRequest, context: Context) -> str | None:
    """The request_id field, or the Idempotency-Key header REST clients may send instead;
    every Idempotency-Key header and the field must agree."""
    headers = {v for k, v in context.invocation_metadata() or () if k == IDEMPOTENCY_KEY and v}
    values = {str(v) for v in headers} | ({request.request_id} if request.request_id else set())
    if len(values) > 1:
        raise InvalidConversation(
            [
                FieldViolation(
                    "request_id",
                    Reason.IDEMPOTENCY_KEY_MISMATCH,
                    "differs from the Idempotency-Key header"
                    if request.request_id and headers
                    else "the Idempotency-Key headers differ",
                )
            ]
        )
    return values.pop() if values else None
