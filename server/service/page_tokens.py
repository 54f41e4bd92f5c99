"""Page tokens (AIP-158): opaque, signed, and bound to the query that issued them.

A token carries the key of the last item of its page and a digest of the query
(a List's organisation, sku, locale, order, search and filter; a ListAnswers'
organisation, conversation and filter; the organisation of the moderation queue, its log
or its blocked terms) and of the role whose view it pages through (a moderator's token is
no shopper's); an HMAC with the key every replica shares makes it tamper-evident. A token
that does not verify, or that comes back with another query, is refused as invalid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from typing import Any, cast

from server.service.decisions import ModerationQuery
from server.service.domain import ORDERS, SEARCH_ORDER, SHOPPER, AnswerQuery, PageKey, PageQuery
from server.service.errors import FieldViolation, InvalidRequest, Reason
from server.service.filters import NO_FILTER

_SIGNATURE_BYTES = 16
# The violation of a page_token that does not verify, or not for this query.
NOT_A_PAGE_TOKEN = FieldViolation(
    "page_token", Reason.NOT_A_PAGE_TOKEN, "is not a page token of this request"
)


class BadPageToken(ValueError):
    """The token is not one this service issued for this query."""


# What a token may be bound to.
Query = PageQuery | AnswerQuery | ModerationQuery


def _query_digest(query: Query) -> str:
    fields: list[object]
    if isinstance(query, ModerationQuery):
        fields = ["moderation", query.kind, query.trkref]
    elif isinstance(query, AnswerQuery):
        fields = ["answers", query.trkref, query.conversation_id]
        if query.role != SHOPPER:
            fields += [query.role, query.status]
    else:
        fields = [query.trkref, query.sku, query.locale, query.order]
        if query.search or query.filter != NO_FILTER:
            # Appended only when given: tokens issued for a List without them stay valid.
            fields += [query.search, *query.filter.key()]
        if query.role != SHOPPER:
            # A shopper's view is the one without it, as a shopper's tokens were issued.
            fields += ["role", query.role]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:32]


def _key_value(value: object, relevance: bool) -> bool:
    """A value a key may hold: a whole number in a 64-bit column, or, where the key holds
    a relevance, a finite float."""
    if relevance and isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _relevance_at(query: Query) -> int | None:
    """Where the query's key holds the database's float relevance, if it does."""
    if isinstance(query, PageQuery) and query.order == SEARCH_ORDER:
        return ORDERS[SEARCH_ORDER].index("relevance")
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, query: Query, after: PageKey | tuple[str]) -> str:
    """The token of the page that starts after `after`, for this query."""
    payload = json.dumps({"q": _query_digest(query), "k": list(after)}, separators=(",", ":"))
    signature = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return f"{_b64(payload.encode())}.{_b64(signature)}"


def read(secret: bytes, query: Query, token: str, key_length: int) -> PageKey:
    """The key a token carries; BadPageToken unless this service issued it for this query."""
    key = _verified_key(secret, query, token)
    if len(key) != key_length:
        raise BadPageToken()
    relevance = _relevance_at(query)
    if not all(_key_value(value, n == relevance) for n, value in enumerate(key)):
        raise BadPageToken()
    return tuple(cast(list[int | float], key))


def text_after(secret: bytes, query: Query, token: str) -> str | None:
    """Where a page of texts in order (blocked terms) starts: after the one text its token's
    key holds, or None for the first page (no token). InvalidRequest unless this service
    issued the token for this query."""
    if not token:
        return None
    try:
        key = _verified_key(secret, query, token)
    except BadPageToken:
        key = []
    if len(key) != 1 or not isinstance(key[0], str):
        raise InvalidRequest([NOT_A_PAGE_TOKEN])
    return key[0]


def _verified_key(secret: bytes, query: Query, token: str) -> list[Any]:
    """The key of a token whose signature verifies and that was issued for `query`."""
    try:
        encoded_payload, encoded_signature = token.split(".")
        payload, signature = _unb64(encoded_payload), _unb64(encoded_signature)
    except (ValueError, binascii.Error):
        raise BadPageToken() from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    if not hmac.compare_digest(signature, expected):
        raise BadPageToken()
    content = json.loads(payload)
    if content["q"] != _query_digest(query):
        raise BadPageToken()
    return list(content["k"])
