"""Domain values as protobuf messages: what the servicer answers with."""

from __future__ import annotations

import datetime

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from conversations.v4 import conversation_service_pb2 as pb
from server.service import domain

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _set_time(timestamp: Timestamp, value: datetime.datetime) -> None:
    # What Timestamp.FromDatetime gives, at a fraction of its cost on the hot path.
    since = value - _EPOCH
    timestamp.seconds = since.days * 86400 + since.seconds
    if since.microseconds:
        timestamp.nanos = since.microseconds * 1000


# Messages are filled in place (RepeatedCompositeContainer.add): a message handed to
# another's constructor is copied, and a page's answers were copied twice.


def _answer_fields(answer: domain.Answer) -> dict[str, object]:
    return {
        "id": answer.id,
        "response": answer.response,
        "first_name": answer.first_name,
        "town": answer.town,
        "job_title": answer.job_title,
        "reviewer_segment": answer.reviewer_segment,
        "helpful": answer.helpful,
        "unhelpful": answer.unhelpful,
        "review_url": answer.review_url,
        "review_locale": answer.review_locale,
        "reviewer_facebook_url": answer.reviewer_facebook_url,
        "response_type": answer.response_type,
        "retailer_name": answer.retailer_name,
        "retailer_image_url": answer.retailer_image_url,
    }


def _add_answers(
    answers: RepeatedCompositeFieldContainer[pb.Answer], conversation: domain.Conversation
) -> None:
    for answer in conversation.answers:
        message = answers.add(**_answer_fields(answer))
        _set_time(message.created_at, answer.created_at)


def answer_message(answer: domain.Answer) -> pb.Answer:
    message = pb.Answer(**_answer_fields(answer))  # type: ignore[arg-type]
    _set_time(message.created_at, answer.created_at)
    return message


def _conversation_fields(conversation: domain.Conversation) -> dict[str, object]:
    return {
        "id": conversation.id,
        "first_name": conversation.first_name,
        "question": conversation.question,
        "helpful": conversation.helpful,
        "unhelpful": conversation.unhelpful,
        "embeddable": conversation.embeddable,
        "retailer_locale": conversation.retailer_locale,
        "answers_count": conversation.answers_count,
    }


def conversation_message(conversation: domain.Conversation) -> pb.Conversation:
    message = pb.Conversation(**_conversation_fields(conversation))  # type: ignore[arg-type]
    _set_time(message.created_at, conversation.created_at)
    _add_answers(message.answers, conversation)
    return message


def page_message(
    page: domain.ConversationPage, next_page_token: str
) -> pb.ListConversationsResponse:
    response = pb.ListConversationsResponse(next_page_token=next_page_token)
    response.summary.question_count = page.question_count
    response.summary.answers_count = page.answers_count
    for conversation in page.conversations:
        message = response.conversations.add(**_conversation_fields(conversation))
        _set_time(message.created_at, conversation.created_at)
        _add_answers(message.answers, conversation)
    return response
