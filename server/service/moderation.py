"""Use cases of moderation: what a submission's status is, the decisions of moderators, the
queue of pending items and the log of decisions (blocked terms: blocked_terms.py)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from server.service import page_tokens
from server.service.answer_pages import check_conversation_id, check_page_size
from server.service.decisions import (
    Decision,
    DecisionPage,
    ModerationQuery,
    QueuePage,
    RecordedDecision,
)
from server.service.domain import (
    ERASED,
    PENDING,
    PRE_MODERATION,
    PUBLISHED,
    REJECTED,
    Caller,
    Organisation,
    PageKey,
)
from server.service.errors import (
    AnswerNotFound,
    ConversationNotFound,
    FieldViolation,
    InvalidRequest,
    OrganisationNotFound,
    PermissionDenied,
)
from server.service.ports import Storage
from server.service.screening import screen
from server.service.validation import check_optional_text, check_trkref

# As a List's pages (AIP-158).
PAGE_SIZE = 20
PAGE_SIZE_MAX = 100
REASON_MAX = 100
NOTE_MAX = 2000
# What an approve and a reject move an item to.
VERDICTS = {"approve": PUBLISHED, "reject": REJECTED, "erase": ERASED}


async def submission_status(
    store: Storage, organisation: Organisation, texts: Mapping[str, str], locale: str
) -> tuple[str, tuple[str, ...]]:
    """A new item's status and why it is held: screening's reasons, and pre_moderation
    when its organisation pre-moderates; published when there is none."""
    terms = await store.moderation.blocked_terms(organisation.trkref)
    holds = screen(texts, terms, store.moderation.contacts, locale)
    reasons = sorted({str(hold.reason) for hold in holds})
    if organisation.moderation == "pre":
        reasons.insert(0, PRE_MODERATION)
    return (PENDING if reasons else PUBLISHED), tuple(reasons)


def check_moderator(caller: Caller) -> None:
    """PermissionDenied unless the caller's key is a moderator's: checked first, so a
    shopper key learns nothing of what exists."""
    if not caller.moderator:
        raise PermissionDenied()


@dataclass(frozen=True)
class DecisionRequest:
    """An approve or a reject as asked: on a conversation or an answer of `trkref`."""

    trkref: str
    target: str  # "conversation" or "answer"
    target_id: int
    verdict: str  # a key of VERDICTS
    reason: str = ""
    note: str = ""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def decide(
    store: Storage,
    asked: DecisionRequest,
    caller: Caller,
    clock: Callable[[], datetime.datetime] = _utc_now,
) -> RecordedDecision:
    """Apply a moderator's decision and log it; idempotent: one that changes nothing (an
    approve of a published item) succeeds and logs nothing."""
    check_moderator(caller)
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", asked.trkref)
    check_conversation_id(violations, "id", asked.target_id)
    check_optional_text(violations, "reason", asked.reason, max_length=REASON_MAX)
    check_optional_text(violations, "note", asked.note, max_length=NOTE_MAX)
    if violations:
        raise InvalidRequest(violations)
    missing = (
        ConversationNotFound(asked.target_id)
        if asked.target == "conversation"
        else AnswerNotFound(asked.target_id)
    )
    if asked.trkref not in caller.organisations:
        raise missing
    decision = Decision(
        trkref=asked.trkref,
        target=asked.target,
        target_id=asked.target_id,
        to_status=VERDICTS[asked.verdict],
        decided_by=caller.key_id,
        decided_at=clock().replace(microsecond=0),
        reason=asked.reason,
        note=asked.note,
    )
    recorded = await store.moderation.decide(decision)
    if recorded is None:
        raise missing
    return recorded


def _next_token(secret: bytes, query: ModerationQuery, next_after: PageKey | None) -> str:
    return "" if next_after is None else page_tokens.issue(secret, query, next_after)


async def _checked(
    store: Storage, kind: str, trkref: str, page_size: int, page_token: str, caller: Caller
) -> tuple[ModerationQuery, PageKey | None, bytes]:
    """What a page of the queue or the log checks: the caller's role, its parameters, its
    token (the key it starts after), the organisation; the query and the tokens' key."""
    query = ModerationQuery(kind, trkref)
    check_moderator(caller)
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", query.trkref)
    check_page_size(violations, "page_size", page_size)
    if violations:
        raise InvalidRequest(violations)
    if query.trkref not in caller.organisations:
        raise OrganisationNotFound(query.trkref)
    secret = await store.page_token_secret()
    after = None
    if page_token:
        key_length = 3 if query.kind == "queue" else 1
        try:
            after = page_tokens.read(secret, query, page_token, key_length)
        except page_tokens.BadPageToken:
            raise InvalidRequest([page_tokens.NOT_A_PAGE_TOKEN]) from None
    if await store.organisations.known(query.trkref) is None:
        raise OrganisationNotFound(query.trkref)
    size = min(page_size or PAGE_SIZE, PAGE_SIZE_MAX)
    return ModerationQuery(query.kind, query.trkref, size), after, secret


async def read_queue(
    store: Storage, trkref: str, page_size: int, page_token: str, caller: Caller
) -> tuple[QueuePage, str]:
    """A page of the organisation's pending items, oldest first, and the next page's token."""
    query, after, secret = await _checked(store, "queue", trkref, page_size, page_token, caller)
    page = await store.moderation.queue_page(trkref, after, query.size)
    return page, _next_token(secret, query, page.next_after)


async def read_decisions(
    store: Storage, trkref: str, page_size: int, page_token: str, caller: Caller
) -> tuple[DecisionPage, str]:
    """A page of the organisation's decisions, newest first, and the next page's token."""
    query, after, secret = await _checked(store, "decisions", trkref, page_size, page_token, caller)
    page = await store.moderation.decision_page(trkref, after, query.size)
    return page, _next_token(secret, query, page.next_after)
