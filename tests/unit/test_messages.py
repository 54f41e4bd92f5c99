"""Domain values as protobuf messages: every field, set or at its default."""

from __future__ import annotations

import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from conversations.v4 import conversation_service_pb2 as pb
from server.api.messages import answer_message, conversation_message, page_message
from server.service.domain import Answer, Conversation, ConversationPage

AT = datetime.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.UTC)
FULL_ANSWER = Answer(7, "Yes.", AT, "Ann", "Leeds", "Chef", "verified buyer", 3, 4,
                     "https://r.example/1", "en-GB", "https://fb.example/ann", "retailer",
                     "Shop", "https://shop.example/logo.png")  # fmt: skip
EMPTY_ANSWER = Answer(8, "No.", AT, "Bo", "", None, "", 0, 0, "", "", None, "", None, None)


def timestamp(value: datetime.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def expected_answer(answer: Answer) -> pb.Answer:
    fields = answer._asdict()
    status = pb.Status.Value(answer.status.upper())
    return pb.Answer(**{**fields, "created_at": timestamp(answer.created_at), "status": status})


def test_answers_carry_every_field_and_leave_unset_optionals_absent() -> None:
    for answer in (FULL_ANSWER, EMPTY_ANSWER):
        assert answer_message(answer) == expected_answer(answer)
    empty = answer_message(EMPTY_ANSWER)
    optionals = ("job_title", "reviewer_facebook_url", "retailer_name", "retailer_image_url")
    assert not any(empty.HasField(name) for name in optionals)
    assert all(answer_message(FULL_ANSWER).HasField(name) for name in optionals)
    assert answer_message(EMPTY_ANSWER._replace(job_title="")).HasField("job_title")


def test_conversations_and_pages_carry_every_field_and_their_answers_in_order() -> None:
    full = Conversation(9, "D10", "SKU", "Cy", "Fits?", "en-GB", AT, 5, 6, True, "en-GB",
                        (FULL_ANSWER, EMPTY_ANSWER), 2)  # fmt: skip
    bare = Conversation(10, "D10", "SKU", "Di", "Why?", "en-GB", AT, 0, 0, False, "en-GB")

    def expected(conversation: Conversation) -> pb.Conversation:
        return pb.Conversation(
            id=conversation.id,
            first_name=conversation.first_name,
            question=conversation.question,
            created_at=timestamp(conversation.created_at),
            helpful=conversation.helpful,
            unhelpful=conversation.unhelpful,
            embeddable=conversation.embeddable,
            retailer_locale=conversation.retailer_locale,
            answers=[expected_answer(answer) for answer in conversation.answers],
            answers_count=conversation.answers_count,
            status=pb.Status.Value(conversation.status.upper()),  # type: ignore[arg-type]
            held_for=conversation.held_for,
        )

    assert conversation_message(full) == expected(full)
    assert conversation_message(bare) == expected(bare)
    page = page_message(ConversationPage((full, bare), 2, 2, None), "token")
    assert page == pb.ListConversationsResponse(
        summary=pb.ConversationSummary(question_count=2, answers_count=2),
        conversations=[expected(full), expected(bare)],
        next_page_token="token",
    )
