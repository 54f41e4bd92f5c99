"""Use cases of conversations: plain functions over plain values, raising domain errors."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from server.service import page_tokens
from server.service.answer_pages import (
    DETAIL_ANSWERS,
    check_conversation_id,
    check_page_size,
    embedded_answers,
    with_answers_token,
)
from server.service.domain import (
    DEFAULT_ORDER,
    ORDERS,
    SEARCH_ORDER,
    Caller,
    Conversation,
    ConversationPage,
    NewConversation,
    PageQuery,
    PendingCreate,
)
from server.service.errors import (
    ConversationNotFound,
    FieldViolation,
    InvalidConversation,
    InvalidRequest,
    OrganisationNotFound,
    PermissionDenied,
    Reason,
    RequestIdReused,
)
from server.service.filters import BadFilter, parse_filter
from server.service.moderation import submission_status
from server.service.ports import Storage
from server.service.search_words import search_words
from server.service.validation import (
    canonical_locale,
    check_locale,
    check_request_id,
    check_text,
    check_trkref,
)

FIRST_NAME_MAX = 100
QUESTION_MAX = 5000
SKU_MAX = 100
# AIP-158: a page holds PAGE_SIZE conversations unless asked for fewer, at most PAGE_SIZE_MAX.
PAGE_SIZE = 20
PAGE_SIZE_MAX = 100

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def validate_new_conversation(new: NewConversation) -> list[FieldViolation]:
    """Every problem with a new conversation at once; empty when it is valid."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", new.trkref)
    check_text(violations, "first_name", new.first_name, max_length=FIRST_NAME_MAX)
    check_text(violations, "question", new.question, max_length=QUESTION_MAX, multiline=True)
    check_text(violations, "sku", new.sku, max_length=SKU_MAX)
    if new.locale:
        check_locale(violations, "locale", new.locale)
    if new.request_id is not None:
        check_request_id(violations, "request_id", new.request_id)
    return violations


def request_digest(new: NewConversation) -> str:
    """What makes two creates the same request: everything the client sent."""
    fields = [new.trkref, new.first_name, new.question, new.sku, new.locale or None]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


async def create_conversation(
    store: Storage, new: NewConversation, caller: Caller, clock: Clock = utc_now
) -> Conversation:
    """Store a shopper's question about a product of an organisation; returns it as stored,
    with its status: pending when its organisation pre-moderates or screening holds it.

    An organisation the caller may not reach is reported exactly as one that
    does not exist.
    """
    violations = validate_new_conversation(new)
    if violations:
        raise InvalidConversation(violations)
    if new.trkref not in caller.organisations:
        raise OrganisationNotFound(new.trkref)
    # Whole seconds: the v4 API shows `created_at` as 2014-10-07T14:17:56Z.
    created_at = clock().astimezone(datetime.UTC).replace(microsecond=0)
    request_id = None if new.request_id is None else str(uuid.UUID(new.request_id))
    digest = None if request_id is None else request_digest(new)
    organisation = await store.organisations.known(new.trkref)
    if organisation is None:
        raise OrganisationNotFound(new.trkref)
    # The request as stored: its locale in one case, so that a List filters it whatever
    # case it was sent in, and its request_id in one form.
    stored_new = NewConversation(
        new.trkref,
        new.first_name,
        new.question,
        new.sku,
        canonical_locale(new.locale or organisation.locale),
        request_id,
    )
    texts = {"first_name": new.first_name, "question": new.question}
    status, held_for = await submission_status(store, organisation, texts, stored_new.locale or "")
    stored = await store.insert_conversation(
        PendingCreate(stored_new, organisation, created_at, caller.key_id, digest, status, held_for)
    )
    # A retry gets the conversation its request_id created; another request, an error.
    if stored.request_digest != digest:
        assert request_id is not None
        raise RequestIdReused(request_id)
    return stored.conversation


async def get_conversation(
    store: Storage, trkref: str, conversation_id: int, caller: Caller
) -> Conversation:
    """The conversation `conversation_id` of the organisation `trkref`, with its answers:
    for a moderator, of any status with answers of every status; for a shopper, published
    with its published answers.

    Not found alike whether it does not exist (or is not published, for a shopper), belongs
    to another organisation, or `trkref` is out of the caller's reach.
    """
    check_get(trkref, conversation_id, caller)
    return await read_conversation(store, trkref, conversation_id, caller.role)


def check_get(trkref: str, conversation_id: int, caller: Caller) -> None:
    """What a Detail checks before reading: its parameters, and the caller's reach."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", trkref)
    check_conversation_id(violations, "id", conversation_id)
    if violations:
        raise InvalidRequest(violations)
    if trkref not in caller.organisations:
        raise ConversationNotFound(conversation_id)


async def read_conversation(
    store: Storage, trkref: str, conversation_id: int, role: str
) -> Conversation:
    """A Detail checked by check_get, as `role` sees it: the conversation, or
    ConversationNotFound."""
    # Scoped in the one statement: another organisation's id costs what a missing one does.
    conversation = await store.read_conversation(conversation_id, DETAIL_ANSWERS, trkref, role)
    if conversation is None:
        raise ConversationNotFound(conversation_id)
    if conversation.answers_after is None:
        return conversation
    return with_answers_token(await store.page_token_secret(), conversation, role)


@dataclass(frozen=True)
class ListRequest:
    """A List as asked: page_size 0 means the default, order_by "" the default order."""

    trkref: str
    sku: str = ""  # "" for every product of the organisation
    locale: str | None = None
    page_size: int = 0
    page_token: str = ""
    order_by: str = ""
    search: str = ""
    filter: str = ""
    answers_page_size: int | None = None


async def list_conversations(
    store: Storage, request: ListRequest, caller: Caller
) -> tuple[ConversationPage, str]:
    """A page of the conversations about a product (or every product of the organisation),
    and the token of the next page ("" on the last one). The published conversations unless
    a moderator's filter names another status; a moderator's carry their answers of every
    status. The counts are of published items, whoever asks."""
    query, secret = await checked_list(store, request, caller)
    return await read_list(store, query, secret)


async def checked_list(
    store: Storage, request: ListRequest, caller: Caller
) -> tuple[PageQuery, bytes]:
    """What a List checks before reading its page: the query it asks for (after its
    page_token's key), and the key page tokens are signed with."""
    query = _page_query(request, caller.role)
    if query.filter.status is not None and not caller.moderator:
        raise PermissionDenied()
    if request.trkref not in caller.organisations:
        raise OrganisationNotFound(request.trkref)
    secret = await store.page_token_secret()
    if request.page_token:
        try:
            after = page_tokens.read(secret, query, request.page_token, len(ORDERS[query.order]))
        except page_tokens.BadPageToken:
            raise InvalidRequest([page_tokens.NOT_A_PAGE_TOKEN]) from None
        query = replace(query, after=after)
    if await store.organisations.known(request.trkref) is None:
        raise OrganisationNotFound(request.trkref)
    return query, secret


async def read_list(
    store: Storage, query: PageQuery, secret: bytes
) -> tuple[ConversationPage, str]:
    """The page of a query checked_list made, and the token of the next page."""
    page = await store.read_page(query)
    if any(c.answers_after is not None for c in page.conversations):
        conversations = tuple(with_answers_token(secret, c, query.role) for c in page.conversations)
        page = replace(page, conversations=conversations)
    token = "" if page.next_after is None else page_tokens.issue(secret, query, page.next_after)
    return page, token


def _page_query(request: ListRequest, role: str) -> PageQuery:
    """The query a List asks for, in `role`'s view; InvalidRequest lists every bad parameter."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", request.trkref)
    if request.sku:
        check_text(violations, "sku", request.sku, max_length=SKU_MAX)
    if request.locale is not None:
        check_locale(violations, "locale", request.locale)
    check_page_size(violations, "page_size", request.page_size)
    if request.answers_page_size is not None:
        check_page_size(violations, "answers_page_size", request.answers_page_size)
    words = search_words(violations, "search", request.search)
    default = SEARCH_ORDER if request.search else DEFAULT_ORDER
    order = " ".join(request.order_by.split()) or default
    if order not in ORDERS:
        choices = ", ".join(f"'{o}'" for o in ORDERS)
        violations.append(
            FieldViolation("order_by", Reason.UNKNOWN_ORDER, f"must be one of {choices}")
        )
    elif order == SEARCH_ORDER and not request.search:
        violations.append(
            FieldViolation("order_by", Reason.SEARCH_REQUIRED, "is 'relevance' only with search")
        )
    try:
        chosen = parse_filter(request.filter)
    except BadFilter as bad:
        violations.append(FieldViolation("filter", Reason.INVALID_FILTER, str(bad)))
    if violations:
        raise InvalidRequest(violations)
    size = min(request.page_size or PAGE_SIZE, PAGE_SIZE_MAX)
    locale = None if request.locale is None else canonical_locale(request.locale)
    sku = request.sku or None
    answers = embedded_answers(request.answers_page_size)
    return PageQuery(
        request.trkref,
        sku,
        locale,
        order,
        size,
        search=words,
        filter=chosen,
        answers=answers,
        role=role,
    )
