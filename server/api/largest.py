"""The largest response each method can send, from the contract's bounds: every text at its
maximum length in its widest form, every number at its largest, every page full.

A text's widest form is four bytes a character in protobuf (UTF-8) and six in the JSON
Envoy's transcoder prints (`<`, `>` and a few more are escaped as `\\u003c`). The gRPC
server's send limit and the transcoder's response buffer are set from these figures, so
that no response the service can make is refused on its way out.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import Message

from conversations.v4 import conversation_service_pb2 as pb
from server.service import answer_pages, answers, conversations, page_tokens
from server.service.domain import ORDERS, PRE_MODERATION, AnswerQuery, PageQuery
from server.service.reports import REPORTED
from server.service.screening import HoldReason
from server.service.validation import LOCALE_MAX, URL_MAX

_UINT32_MAX = 2**32 - 1
# The widest values a page token's key holds, as its JSON prints them: a whole number in a
# 64-bit column, and a relevance (a double, whose widest form is longer).
_KEY_INT_MAX = 2**63 - 1
_WIDEST_RELEVANCE = -sys.float_info.max
# 9999-12-31T23:59:59Z, the last second RFC 3339 (and the JSON of a Timestamp) can print.
_LAST_SECOND = 253402300799
# A character of four bytes in UTF-8; of two in UTF-16, which JSON escapes as `\uXXXX`.
_WIDEST_UTF8 = "\U0001f600"
_WIDEST_JSON = "\u2028"
# Every reason an item may be held for, each once, as a moderator's reads show them; and the
# status a read sends whose JSON name is the longest.
_EVERY_HOLD = (PRE_MODERATION, *(str(reason) for reason in HoldReason), REPORTED)
_LONGEST_STATUS = max(
    (pb.Status.PENDING, pb.Status.PUBLISHED, pb.Status.REJECTED),
    key=lambda status: len(pb.Status.Name(status)),
)


@dataclass(frozen=True)
class Largest:
    """The largest response of any method, in bytes: as a protobuf message, and as JSON."""

    grpc_bytes: int
    json_bytes: int


def largest_answer(wide: str) -> pb.Answer:
    """An answer with every text at its maximum, of `wide` characters."""
    return pb.Answer(
        id=_UINT32_MAX,
        response=wide * answers.RESPONSE_MAX,
        created_at={"seconds": _LAST_SECOND},
        first_name=wide * conversations.FIRST_NAME_MAX,
        town=wide * answers.SHORT_TEXT_MAX,
        job_title=wide * answers.SHORT_TEXT_MAX,
        reviewer_segment=wide * answers.SHORT_TEXT_MAX,
        helpful=_UINT32_MAX,
        unhelpful=_UINT32_MAX,
        review_url=wide * URL_MAX,
        review_locale="x" * LOCALE_MAX,
        reviewer_facebook_url=wide * URL_MAX,
        response_type=max(answers.RESPONSE_TYPES, key=len),
        retailer_name=wide * answers.RETAILER_NAME_MAX,
        retailer_image_url=wide * URL_MAX,
        status=_LONGEST_STATUS,
        held_for=_EVERY_HOLD,
    )


def largest_conversation(wide: str, answer_count: int) -> pb.Conversation:
    """A conversation with every text at its maximum and `answer_count` largest answers."""
    return pb.Conversation(
        id=_UINT32_MAX,
        first_name=wide * conversations.FIRST_NAME_MAX,
        question=wide * conversations.QUESTION_MAX,
        created_at={"seconds": _LAST_SECOND},
        helpful=_UINT32_MAX,
        unhelpful=_UINT32_MAX,
        embeddable=True,
        retailer_locale="x" * LOCALE_MAX,
        answers=[largest_answer(wide)] * answer_count,
        answers_count=_UINT32_MAX,
        answers_next_page_token=_largest_token(AnswerQuery("x" * 32, _UINT32_MAX, 0)),
        status=_LONGEST_STATUS,
        held_for=_EVERY_HOLD,
    )


def largest_responses(wide: str) -> dict[str, tuple[Message, Message | None, int]]:
    """Each method's largest response, its texts of `wide` characters: a message with one
    item in its longest repeated field, that item, and how many more items a full page has
    (the whole message is sized once, its items' copies by arithmetic)."""
    conversation = largest_conversation(wide, answer_pages.EMBEDDED_MAX)
    page = pb.ListConversationsResponse(
        summary={"question_count": _UINT32_MAX, "answers_count": _UINT32_MAX},
        conversations=[conversation],
        next_page_token=_largest_token(
            PageQuery("x" * 32, "x", None, "relevance", 0, search="x"), _WIDEST_RELEVANCE
        ),
    )
    answer = largest_answer(wide)
    answer_page = pb.ListAnswersResponse(
        answers=[answer],
        next_page_token=_largest_token(AnswerQuery("x" * 32, _UINT32_MAX, 0)),
        answers_count=_UINT32_MAX,
    )
    detail = largest_conversation(wide, 1)
    return {
        "CreateConversation": (largest_conversation(wide, 0), None, 0),
        "GetConversation": (detail, answer, answer_pages.DETAIL_ANSWERS - 1),
        "ListConversations": (page, conversation, conversations.PAGE_SIZE_MAX - 1),
        "CreateAnswer": (answer, None, 0),
        "ListAnswers": (answer_page, answer, answer_pages.PAGE_SIZE_MAX - 1),
    }


def grpc_bytes(message: Message, item: Message | None, more: int) -> int:
    """The bytes of `message` with `more` copies of `item` in a repeated field: each a tag
    (field numbers below 16 take one byte), the item's length (a varint) and the item."""
    if item is None:
        return message.ByteSize()
    size = item.ByteSize()
    return message.ByteSize() + more * (1 + len(_varint(size)) + size)


def json_bytes(message: Message, item: Message | None, more: int) -> int:
    """The JSON bytes of `message` with `more` copies of `item` in a list: each a comma
    and the item."""
    extra = 0 if item is None else more * (1 + len(as_json(item)))
    return len(as_json(message)) + extra


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while True:
        encoded.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(encoded)


def _largest_token(query: PageQuery | AnswerQuery, *first: float) -> str:
    """A page token of `query` with the widest key its order may carry: the `first` values
    given (a relevance), then whole numbers at their largest."""
    length = 2 if isinstance(query, AnswerQuery) else len(ORDERS[query.order])
    key = (*first, *(_KEY_INT_MAX,) * (length - len(first)))
    return page_tokens.issue(b"\0" * 32, query, key)


def as_json(message: Message) -> bytes:
    """The JSON the transcoder prints, but for escaping every character beyond ASCII."""
    printed = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(printed, separators=(",", ":"), ensure_ascii=True).encode()


@functools.cache
def largest() -> Largest:
    """The largest response of any method, over gRPC and over REST."""
    return Largest(
        grpc_bytes=max(grpc_bytes(*r) for r in largest_responses(_WIDEST_UTF8).values()),
        json_bytes=max(json_bytes(*r) for r in largest_responses(_WIDEST_JSON).values()),
    )
