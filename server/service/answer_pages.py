"""Use cases of reading answers a page at a time: ListAnswers, and the tokens that lead
from the few answers a List or a Detail embeds to the rest."""

from __future__ import annotations

from dataclasses import dataclass, replace

from server.service import page_tokens
from server.service.domain import AnswerPage, AnswerQuery, Caller, Conversation
from server.service.errors import (
    ConversationNotFound,
    FieldViolation,
    InvalidRequest,
    PermissionDenied,
    Reason,
)
from server.service.filters import ANSWER_FIELDS, BadFilter, parse_filter
from server.service.ports import Storage
from server.service.validation import check_trkref

# AIP-158: a page of ListAnswers holds PAGE_SIZE answers unless asked for fewer, at most
# PAGE_SIZE_MAX. Detail embeds a first page of the default size.
PAGE_SIZE = 20
PAGE_SIZE_MAX = 100
DETAIL_ANSWERS = PAGE_SIZE
# Answers each conversation of a List embeds unless asked for fewer, at most EMBEDDED_MAX.
EMBEDDED = 3
EMBEDDED_MAX = 5
# A token's key: (created_at, id) of the last answer of its page.
_KEY_LENGTH = 2


@dataclass(frozen=True)
class ListAnswersRequest:
    """A ListAnswers as asked: page_size 0 means the default, filter "" none (a moderator's
    `status = ...` alone)."""

    trkref: str
    conversation_id: int
    page_size: int = 0
    page_token: str = ""
    filter: str = ""


def check_conversation_id(violations: list[FieldViolation], field: str, value: int) -> None:
    if value < 1:
        violations.append(FieldViolation(field, Reason.OUT_OF_RANGE, "must be at least 1"))


def check_page_size(violations: list[FieldViolation], field: str, value: int) -> None:
    if value < 0:
        violations.append(FieldViolation(field, Reason.NEGATIVE, "must not be negative"))


def embedded_answers(asked: int | None) -> int:
    """How many answers each conversation of a List embeds, for an answers_page_size
    already checked."""
    return EMBEDDED if asked is None else min(asked, EMBEDDED_MAX)


def with_answers_token(secret: bytes, conversation: Conversation, role: str) -> Conversation:
    """The conversation with the ListAnswers page_token of the answers it does not embed,
    bound to the view (`role`) that read it."""
    if conversation.answers_after is None:
        return conversation
    query = AnswerQuery(conversation.trkref, conversation.id, 0, role=role)
    token = page_tokens.issue(secret, query, conversation.answers_after)
    return conversation._replace(answers_next_page_token=token)


async def list_answers(
    store: Storage, request: ListAnswersRequest, caller: Caller
) -> tuple[AnswerPage, str]:
    """A page of a conversation's answers, oldest first, and the token of the next page (""
    on the last one). Not found alike whether the conversation does not exist, belongs to
    another organisation, or `trkref` is out of the caller's reach. A moderator reads the
    answers of every status (or of the one its filter names) of a conversation of any status;
    a shopper, the published answers of a published conversation."""
    query, secret = await checked_list_answers(store, request, caller)
    return await read_answers(store, query, secret)


async def checked_list_answers(
    store: Storage, request: ListAnswersRequest, caller: Caller
) -> tuple[AnswerQuery, bytes]:
    """What a ListAnswers checks before reading: the query it asks for (after its
    page_token's key), and the key page tokens are signed with."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", request.trkref)
    check_conversation_id(violations, "conversation_id", request.conversation_id)
    check_page_size(violations, "page_size", request.page_size)
    try:
        status = parse_filter(request.filter, ANSWER_FIELDS).status
    except BadFilter as bad:
        violations.append(FieldViolation("filter", Reason.INVALID_FILTER, str(bad)))
    if violations:
        raise InvalidRequest(violations)
    if status is not None and not caller.moderator:
        raise PermissionDenied()
    size = min(request.page_size or PAGE_SIZE, PAGE_SIZE_MAX)
    query = AnswerQuery(
        request.trkref, request.conversation_id, size, role=caller.role, status=status
    )
    secret = await store.page_token_secret()
    if request.page_token:
        try:
            after = page_tokens.read(secret, query, request.page_token, _KEY_LENGTH)
        except page_tokens.BadPageToken:
            raise InvalidRequest([page_tokens.NOT_A_PAGE_TOKEN]) from None
        query = replace(query, after=after)
    if request.trkref not in caller.organisations:
        raise ConversationNotFound(request.conversation_id)
    return query, secret


async def read_answers(store: Storage, query: AnswerQuery, secret: bytes) -> tuple[AnswerPage, str]:
    """The page of a query checked_list_answers made, and the token of the next page."""
    page = await store.read_answers(query)
    if page is None:
        raise ConversationNotFound(query.conversation_id)
    token = "" if page.next_after is None else page_tokens.issue(secret, query, page.next_after)
    return page, token
