"""Conditional reads (RFC 9110 section 13): the entity tags of Detail, List and
ListAnswers, and the If-None-Match that answers "not modified" without reading rows.

A tag is an HMAC, with the key every replica shares (the page tokens' key), of what makes
the response: the query as checked (its organisation, ids, sku, locale, order, page size,
page key, search, filter, embedded answers), the role whose view it is (a moderator's
response is never a shopper's 304, nor the reverse) and the stamp of its product, the one row
of conversation_count every write that changes the response changes
(server/storage/stamps.py). It is derived from stored data only, so every replica and
process gives a response the same tag; a write changes it. The stamp is read before the
rows: a response is never older than its tag says.

An organisation-wide List (no sku) has no tag: no one product's stamp changes with every
write it shows, and summing the organisation's would read a row per product.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from server.service import answer_pages, conversations
from server.service.answer_pages import ListAnswersRequest
from server.service.conversations import ListRequest
from server.service.domain import (
    AnswerPage,
    AnswerQuery,
    Caller,
    Conversation,
    ConversationPage,
    PageQuery,
    Stamp,
)
from server.service.errors import ConversationNotFound
from server.service.ports import Storage

# Changes whenever the same query and stamp would give another response body.
TAG_FORMAT = 1
_TAG_BYTES = 16
# An entity-tag of an If-None-Match list (weak or strong), its opaque-tag captured, up to
# the comma after it or the end; and what may separate two of them.
_ENTITY_TAG = re.compile(r'(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|\Z)')
_SEPARATORS = re.compile(r"[ \t,]*")

T = TypeVar("T")


@dataclass(frozen=True)
class Tagged(Generic[T]):
    """A conditional read's answer: its entity tag (None where the response has none), and
    its value; None when the client's copy, tagged `tag`, is current (not modified)."""

    tag: str | None
    value: T | None


def entity_tag(secret: bytes, query: Sequence[object], stamp: Stamp) -> str:
    """A strong entity tag, quoted, of a response to `query` under `stamp`."""
    text = json.dumps([TAG_FORMAT, *query, *stamp], separators=(",", ":"))
    digest = hmac.new(secret, text.encode(), hashlib.sha256).digest()[:_TAG_BYTES]
    return '"' + base64.urlsafe_b64encode(digest).decode().rstrip("=") + '"'


def none_match(if_none_match: Sequence[str], tag: str) -> bool:
    """Whether If-None-Match (each value a `*` or a list of entity-tags) names `tag`, by the
    weak comparison RFC 9110 asks of it: W/"x" matches "x". A value that is neither names
    nothing."""
    opaque = tag[1:-1]
    for value in if_none_match:
        if value.strip() == "*" or opaque in (_opaque_tags(value) or ()):
            return True
    return False


def _opaque_tags(value: str) -> list[str] | None:
    """The opaque-tags of a list of entity-tags; None when it is not one."""
    tags: list[str] = []
    at = _SEPARATORS.match(value).end()  # type: ignore[union-attr]  # matches empty text
    while at < len(value):
        found = _ENTITY_TAG.match(value, at)
        if found is None:
            return None
        tags.append(found.group(1))
        at = _SEPARATORS.match(value, found.end()).end()  # type: ignore[union-attr]
    return tags


async def get_conversation(
    store: Storage, trkref: str, conversation_id: int, caller: Caller, if_none_match: Sequence[str]
) -> Tagged[Conversation]:
    """A Detail (conversations.get_conversation) with its tag; not modified when
    If-None-Match names it, after one stamp read."""
    conversations.check_get(trkref, conversation_id, caller)
    stamp = await store.conversation_stamp(trkref, conversation_id, caller.role)
    if stamp is None:
        raise ConversationNotFound(conversation_id)
    secret = await store.page_token_secret()
    tag = entity_tag(secret, ("detail", trkref, conversation_id, caller.role), stamp)
    if none_match(if_none_match, tag):
        return Tagged(tag, None)
    found = await conversations.read_conversation(store, trkref, conversation_id, caller.role)
    return Tagged(tag, found)


async def list_conversations(
    store: Storage, request: ListRequest, caller: Caller, if_none_match: Sequence[str]
) -> Tagged[tuple[ConversationPage, str]]:
    """A List (conversations.list_conversations) with its tag when it is of one product;
    not modified when If-None-Match names it, after one stamp read."""
    query, secret = await conversations.checked_list(store, request, caller)
    if query.sku is None:
        return Tagged(None, await conversations.read_list(store, query, secret))
    stamp = await store.product_stamp(query.trkref, query.sku, query.locale)
    tag = entity_tag(secret, list_fields(query), stamp)
    if none_match(if_none_match, tag):
        return Tagged(tag, None)
    return Tagged(tag, await conversations.read_list(store, query, secret))


def list_fields(query: PageQuery) -> tuple[object, ...]:
    """Everything of a List's query its response depends on."""
    after = None if query.after is None else list(query.after)
    return (
        "list", query.trkref, query.sku, query.locale, query.order, query.size, after,
        query.search, *query.filter.key(), query.answers, query.role,
    )  # fmt: skip


async def list_answers(
    store: Storage, request: ListAnswersRequest, caller: Caller, if_none_match: Sequence[str]
) -> Tagged[tuple[AnswerPage, str]]:
    """A ListAnswers (answer_pages.list_answers) with its tag; not modified when
    If-None-Match names it, after one stamp read."""
    query, secret = await answer_pages.checked_list_answers(store, request, caller)
    stamp = await store.conversation_stamp(query.trkref, query.conversation_id, query.role)
    if stamp is None:
        raise ConversationNotFound(query.conversation_id)
    tag = entity_tag(secret, answers_fields(query), stamp)
    if none_match(if_none_match, tag):
        return Tagged(tag, None)
    return Tagged(tag, await answer_pages.read_answers(store, query, secret))


def answers_fields(query: AnswerQuery) -> tuple[object, ...]:
    """Everything of a ListAnswers' query its response depends on."""
    after = None if query.after is None else list(query.after)
    return (
        "answers", query.trkref, query.conversation_id, query.size, after, query.role,
        query.status,
    )  # fmt: skip
