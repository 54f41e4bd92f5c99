"""The gRPC servicer: protobuf messages in and out, one use case per RPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from google.protobuf import empty_pb2

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server.api.auth import current_caller
from server.api.errors import Context, maps_domain_errors
from server.api.messages import (
    answer_message,
    answer_page_message,
    blocked_terms_message,
    conversation_message,
    decision_message,
    decisions_message,
    page_message,
    queue_message,
)
from server.api.observers import call_metadata
from server.metrics import count_moderation_decision, count_report
from server.service import (
    answer_pages,
    answers,
    blocked_terms,
    conditional,
    conversations,
    domain,
    moderation,
    reports,
    votes,
)
from server.service.domain import Caller
from server.service.errors import (
    FieldViolation,
    InvalidAnswer,
    InvalidArgument,
    InvalidConversation,
    Reason,
)
from server.service.ports import Storage

IDEMPOTENCY_KEY = "idempotency-key"
# Conditional reads (docs/api.md): the client's If-None-Match, and what a Detail, a List
# and a ListAnswers answer with.
IF_NONE_MATCH = "if-none-match"
ETAG = "etag"
CACHE_CONTROL = ("cache-control", "private, no-cache")
# On a response whose message is empty because the client's copy is current: Envoy
# answers it 304 Not Modified, without a body.
NOT_MODIFIED = ("x-not-modified", "true")
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
        found = await conditional.get_conversation(
            self._store, request.trkref, request.id, self._caller(), _if_none_match(context)
        )
        await _send_tag(context, found.tag, not_modified=found.value is None)
        return pb.Conversation() if found.value is None else conversation_message(found.value)

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
            search=request.search,
            filter=request.filter,
            answers_page_size=(
                request.answers_page_size if request.HasField("answers_page_size") else None
            ),
        )
        found = await conditional.list_conversations(
            self._store, asked, self._caller(), _if_none_match(context)
        )
        await _send_tag(context, found.tag, not_modified=found.value is None)
        if found.value is None:
            return pb.ListConversationsResponse()
        return page_message(*found.value)

    @maps_domain_errors
    async def ListAnswers(
        self, request: pb.ListAnswersRequest, context: Context
    ) -> pb.ListAnswersResponse:
        asked = answer_pages.ListAnswersRequest(
            trkref=request.trkref,
            conversation_id=request.conversation_id,
            page_size=request.page_size,
            page_token=request.page_token,
            filter=request.filter,
        )
        found = await conditional.list_answers(
            self._store, asked, self._caller(), _if_none_match(context)
        )
        await _send_tag(context, found.tag, not_modified=found.value is None)
        if found.value is None:
            return pb.ListAnswersResponse()
        return answer_page_message(*found.value)

    @maps_domain_errors
    async def CreateAnswer(self, request: pb.CreateAnswerRequest, context: Context) -> pb.Answer:
        a = request.answer
        new = domain.NewAnswer(
            trkref=request.trkref,
            conversation_id=request.conversation_id,
            response=a.response,
            first_name=a.first_name,
            response_type=a.response_type,
            town=a.town,
            job_title=a.job_title if a.HasField("job_title") else None,
            reviewer_segment=a.reviewer_segment,
            review_url=a.review_url,
            review_locale=a.review_locale,
            reviewer_facebook_url=(
                a.reviewer_facebook_url if a.HasField("reviewer_facebook_url") else None
            ),
            retailer_name=a.retailer_name if a.HasField("retailer_name") else None,
            retailer_image_url=a.retailer_image_url if a.HasField("retailer_image_url") else None,
            request_id=_request_id(a, context, InvalidAnswer),
        )
        created = await answers.create_answer(self._store, new, self._caller())
        return answer_message(created)

    @maps_domain_errors
    async def IncrementConversationHelpful(
        self, request: pb.IncrementConversationHelpfulRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._vote("conversation", "helpful", request)

    @maps_domain_errors
    async def IncrementConversationUnhelpful(
        self, request: pb.IncrementConversationUnhelpfulRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._vote("conversation", "unhelpful", request)

    @maps_domain_errors
    async def IncrementAnswerHelpful(
        self, request: pb.IncrementAnswerHelpfulRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._vote("answer", "helpful", request)

    @maps_domain_errors
    async def IncrementAnswerUnhelpful(
        self, request: pb.IncrementAnswerUnhelpfulRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._vote("answer", "unhelpful", request)

    @maps_domain_errors
    async def ReportConversation(
        self, request: pb.ReportConversationRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._report("conversation", request)

    @maps_domain_errors
    async def ReportAnswer(
        self, request: pb.ReportAnswerRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._report("answer", request)

    async def _report(
        self, target: str, request: pb.ReportConversationRequest | pb.ReportAnswerRequest
    ) -> empty_pb2.Empty:
        number = request.report.reason
        known = number in pb.ReportReason.values()
        reason = pb.ReportReason.Name(number).lower() if known else ""
        outcome = await reports.report(
            self._store,
            self._caller(),
            target=target,
            target_id=request.id,
            trkref=request.trkref,
            reason=reason,
            reporter_id=request.report.reporter_id,
        )
        if outcome.counted:
            count_report(reason, target, outcome.held)
        return empty_pb2.Empty()

    @maps_domain_errors
    async def EraseConversation(
        self, request: pb.EraseConversationRequest, context: Context
    ) -> pb.ModerationDecision:
        return await self._decide("conversation", "erase", request)

    @maps_domain_errors
    async def EraseAnswer(
        self, request: pb.EraseAnswerRequest, context: Context
    ) -> pb.ModerationDecision:
        return await self._decide("answer", "erase", request)

    @maps_domain_errors
    async def ApproveConversation(
        self, request: pb.ApproveConversationRequest, context: Context
    ) -> pb.ModerationDecision:
        return await self._decide("conversation", "approve", request)

    @maps_domain_errors
    async def RejectConversation(
        self, request: pb.RejectConversationRequest, context: Context
    ) -> pb.ModerationDecision:
        return await self._decide("conversation", "reject", request)

    @maps_domain_errors
    async def ApproveAnswer(
        self, request: pb.ApproveAnswerRequest, context: Context
    ) -> pb.ModerationDecision:
        return await self._decide("answer", "approve", request)

    @maps_domain_errors
    async def RejectAnswer(
        self, request: pb.RejectAnswerRequest, context: Context
    ) -> pb.ModerationDecision:
        return await self._decide("answer", "reject", request)

    async def _decide(
        self, target: str, verdict: str, request: DecisionRequest
    ) -> pb.ModerationDecision:
        asked = moderation.DecisionRequest(
            trkref=request.trkref,
            target=target,
            target_id=request.id,
            verdict=verdict,
            reason=request.decision.reason,
            note=request.decision.note,
        )
        recorded = await moderation.decide(self._store, asked, self._caller())
        if recorded.id:
            count_moderation_decision(target, verdict)
        return decision_message(recorded)

    @maps_domain_errors
    async def ListModerationQueue(
        self, request: pb.ListModerationQueueRequest, context: Context
    ) -> pb.ListModerationQueueResponse:
        page, token = await moderation.read_queue(
            self._store, request.trkref, request.page_size, request.page_token, self._caller()
        )
        return queue_message(page, token)

    @maps_domain_errors
    async def ListModerationDecisions(
        self, request: pb.ListModerationDecisionsRequest, context: Context
    ) -> pb.ListModerationDecisionsResponse:
        page, token = await moderation.read_decisions(
            self._store, request.trkref, request.page_size, request.page_token, self._caller()
        )
        return decisions_message(page, token)

    @maps_domain_errors
    async def ListBlockedTerms(
        self, request: pb.ListBlockedTermsRequest, context: Context
    ) -> pb.ListBlockedTermsResponse:
        terms, token = await blocked_terms.read_blocked_terms(
            self._store, request.trkref, request.page_size, request.page_token, self._caller()
        )
        return blocked_terms_message(terms, token)

    @maps_domain_errors
    async def CreateBlockedTerm(
        self, request: pb.CreateBlockedTermRequest, context: Context
    ) -> pb.BlockedTerm:
        stored = await blocked_terms.create_blocked_term(
            self._store, request.trkref, request.blocked_term.term, self._caller()
        )
        return pb.BlockedTerm(term=stored)

    @maps_domain_errors
    async def DeleteBlockedTerm(
        self, request: pb.DeleteBlockedTermRequest, context: Context
    ) -> empty_pb2.Empty:
        await blocked_terms.delete_blocked_term(
            self._store, request.trkref, request.term, self._caller()
        )
        return empty_pb2.Empty()

    async def _vote(self, target: str, counter: str, request: VoteRequest) -> empty_pb2.Empty:
        await votes.vote(
            self._store,
            self._caller(),
            target=target,
            target_id=request.id,
            counter=counter,
            trkref=request.trkref,
            voter_id=request.voter_id,
        )
        return empty_pb2.Empty()


class VoteRequest(Protocol):
    """What the four vote requests share."""

    @property
    def id(self) -> int: ...
    @property
    def trkref(self) -> str: ...
    @property
    def voter_id(self) -> str: ...


class DecisionRequest(Protocol):
    """What the four approve and reject requests share."""

    @property
    def id(self) -> int: ...
    @property
    def trkref(self) -> str: ...
    @property
    def decision(self) -> pb.DecisionNote: ...


class Idempotent(Protocol):
    @property
    def request_id(self) -> str: ...


def _request_id(
    request: Idempotent,
    context: Context,
    invalid: Callable[[list[FieldViolation]], InvalidArgument] = InvalidConversation,
) -> str | None:
    """The request_id field, or the Idempotency-Key header REST clients may send instead;
    every Idempotency-Key header and the field must agree."""
    headers = {v for k, v in call_metadata(context) if k == IDEMPOTENCY_KEY and v}
    values = {str(v) for v in headers} | ({request.request_id} if request.request_id else set())
    if len(values) > 1:
        raise invalid(
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


def _if_none_match(context: Context) -> list[str]:
    """Every If-None-Match value the call carries."""
    return [str(v) for k, v in call_metadata(context) if k == IF_NONE_MATCH]


async def _send_tag(context: Context, tag: str | None, *, not_modified: bool) -> None:
    """A conditional read's initial metadata: Cache-Control, its ETag where it has one,
    and x-not-modified when its message is empty because the client's copy is current.
    Sent once the read succeeded: an error carries none of them."""
    metadata = [CACHE_CONTROL]
    if tag is not None:
        metadata.append((ETAG, tag))
    if not_modified:
        metadata.append(NOT_MODIFIED)
    await context.send_initial_metadata(metadata)
