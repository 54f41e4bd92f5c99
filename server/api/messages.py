"""Domain values as protobuf messages: what the servicer answers with."""

from __future__ import annotations

import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from conversations.v4 import conversation_service_pb2 as pb
from server.service import decisions, domain

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


# The contract's counts are uint32 (REST clients read them as JSON numbers); the database
# counts on in 64 bits, and a count beyond the contract's range shows as its largest value.
_UINT32_MAX = 2**32 - 1


# The contract's Status of each status the domain names.
_STATUSES = {
    domain.PENDING: pb.Status.PENDING,
    domain.PUBLISHED: pb.Status.PUBLISHED,
    domain.REJECTED: pb.Status.REJECTED,
    domain.ERASED: pb.Status.ERASED,
}


def _count(value: int) -> int:
    return value if value <= _UINT32_MAX else _UINT32_MAX


def _set_time(timestamp: Timestamp, value: datetime.datetime) -> None:
    # What Timestamp.FromDatetime gives, at a fraction of its cost on the hot path.
    since = value - _EPOCH
    timestamp.seconds = since.days * 86400 + since.seconds
    if since.microseconds:
        timestamp.nanos = since.microseconds * 1000


# Messages are filled in place, a field at a time (RepeatedCompositeContainer.add(),
# then attributes): a message handed to another's constructor is copied, and keyword
# arguments cost a dict per message. Fields at their default are left alone, as
# proto3 leaves them; the optional ones are set unless None (what a page's message
# costs: docs/performance.md, Get and List).


def _fill_answer(message: pb.Answer, answer: domain.Answer) -> None:
    message.id = answer.id
    message.response = answer.response
    _set_time(message.created_at, answer.created_at)
    message.first_name = answer.first_name
    if answer.town:
        message.town = answer.town
    if answer.job_title is not None:
        message.job_title = answer.job_title
    if answer.reviewer_segment:
        message.reviewer_segment = answer.reviewer_segment
    if answer.helpful:
        message.helpful = _count(answer.helpful)
    if answer.unhelpful:
        message.unhelpful = _count(answer.unhelpful)
    if answer.review_url:
        message.review_url = answer.review_url
    if answer.review_locale:
        message.review_locale = answer.review_locale
    if answer.reviewer_facebook_url is not None:
        message.reviewer_facebook_url = answer.reviewer_facebook_url
    if answer.response_type:
        message.response_type = answer.response_type
    if answer.retailer_name is not None:
        message.retailer_name = answer.retailer_name
    if answer.retailer_image_url is not None:
        message.retailer_image_url = answer.retailer_image_url
    message.status = _STATUSES[answer.status]
    if answer.held_for:
        message.held_for.extend(answer.held_for)


def _fill_conversation(message: pb.Conversation, conversation: domain.Conversation) -> None:
    message.id = conversation.id
    message.first_name = conversation.first_name
    message.question = conversation.question
    _set_time(message.created_at, conversation.created_at)
    if conversation.helpful:
        message.helpful = _count(conversation.helpful)
    if conversation.unhelpful:
        message.unhelpful = _count(conversation.unhelpful)
    if conversation.embeddable:
        message.embeddable = True
    message.retailer_locale = conversation.retailer_locale
    if conversation.answers_count:
        message.answers_count = _count(conversation.answers_count)
    add_answer = message.answers.add
    for answer in conversation.answers:
        _fill_answer(add_answer(), answer)
    if conversation.answers_next_page_token:
        message.answers_next_page_token = conversation.answers_next_page_token
    message.status = _STATUSES[conversation.status]
    if conversation.held_for:
        message.held_for.extend(conversation.held_for)


def answer_message(answer: domain.Answer) -> pb.Answer:
    message = pb.Answer()
    _fill_answer(message, answer)
    return message


def conversation_message(conversation: domain.Conversation) -> pb.Conversation:
    message = pb.Conversation()
    _fill_conversation(message, conversation)
    return message


def page_message(
    page: domain.ConversationPage, next_page_token: str
) -> pb.ListConversationsResponse:
    response = pb.ListConversationsResponse(next_page_token=next_page_token)
    response.summary.question_count = _count(page.question_count)
    response.summary.answers_count = _count(page.answers_count)
    add_conversation = response.conversations.add
    for conversation in page.conversations:
        _fill_conversation(add_conversation(), conversation)
    return response


def answer_page_message(page: domain.AnswerPage, next_page_token: str) -> pb.ListAnswersResponse:
    response = pb.ListAnswersResponse(next_page_token=next_page_token)
    response.answers_count = _count(page.answers_count)
    add_answer = response.answers.add
    for answer in page.answers:
        _fill_answer(add_answer(), answer)
    return response


def decision_message(recorded: decisions.RecordedDecision) -> pb.ModerationDecision:
    decision = recorded.decision
    message = pb.ModerationDecision(
        id=recorded.id,
        target=decision.target,
        target_id=decision.target_id,
        from_status=_STATUSES[recorded.from_status],
        to_status=_STATUSES[decision.to_status],
        decided_by=decision.decided_by,
        reason=decision.reason,
        note=decision.note,
    )
    _set_time(message.decided_at, decision.decided_at)
    return message


def queue_message(
    page: decisions.QueuePage, next_page_token: str
) -> pb.ListModerationQueueResponse:
    response = pb.ListModerationQueueResponse(next_page_token=next_page_token)
    for item in page.items:
        added = response.items.add(kind=item.target)
        _fill_conversation(added.conversation, item.conversation)
        if item.answer is not None:
            _fill_answer(added.answer, item.answer)
        for reason, count in item.reports:
            added.reports.add(reason=pb.ReportReason.Value(reason.upper()), count=count)
    return response


def decisions_message(
    page: decisions.DecisionPage, next_page_token: str
) -> pb.ListModerationDecisionsResponse:
    response = pb.ListModerationDecisionsResponse(next_page_token=next_page_token)
    response.decisions.extend(decision_message(recorded) for recorded in page.decisions)
    return response


def blocked_terms_message(terms: list[str], next_page_token: str) -> pb.ListBlockedTermsResponse:
    response = pb.ListBlockedTermsResponse(next_page_token=next_page_token)
    response.blocked_terms.extend(pb.BlockedTerm(term=term) for term in terms)
    return response
