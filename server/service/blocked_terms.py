"""Use cases of an organisation's blocked terms, from the command line and the API.

A term is stored once, in the form screening matches it in (its folded words,
server/service/text_folding.py), so that two spellings that hold the same texts are one
term, named by either. Any change adds to the organisation's terms revision: every replica
screens with it from its next create on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from server.service import page_tokens
from server.service.answer_pages import check_page_size
from server.service.decisions import ModerationQuery
from server.service.domain import Caller
from server.service.errors import (
    BlockedTermExists,
    BlockedTermNotFound,
    FieldViolation,
    InvalidRequest,
    OrganisationNotFound,
    Reason,
)
from server.service.moderation import PAGE_SIZE, PAGE_SIZE_MAX, check_moderator
from server.service.ports import Storage
from server.service.text_folding import fold_words
from server.service.validation import check_text, check_trkref

TERM_MAX = 200
T = TypeVar("T")


def fold_term(violations: list[FieldViolation], field: str, term: str) -> str:
    """The term as stored and matched; a violation unless it is 1 to TERM_MAX characters
    (folded too), visible, without control characters, with a letter or digit."""
    before = len(violations)
    check_text(violations, field, term, max_length=TERM_MAX)
    if len(violations) > before:
        return ""
    folded = fold_words(term).strip()
    if not folded:
        violations.append(
            FieldViolation(field, Reason.NOTHING_TO_MATCH, "must hold a letter or digit")
        )
    elif len(folded) > TERM_MAX:
        violations.append(
            FieldViolation(
                field,
                Reason.TOO_LONG,
                f"must be at most {TERM_MAX} characters once folded, got {len(folded)}",
            )
        )
    return folded


def change_blocked_terms(store: Storage, trkref: str, terms: list[str], *, add: bool) -> int:
    """Add or remove blocked terms of an organisation; how many changed."""
    violations: list[FieldViolation] = []
    folded = [fold_term(violations, "term", term) for term in terms]
    if not terms:
        violations.append(FieldViolation("term", Reason.REQUIRED, "is required"))
    if violations:
        raise InvalidRequest(violations)
    return _change(store, trkref, list(dict.fromkeys(folded)), add)


def _change(store: Storage, trkref: str, folded: list[str], add: bool) -> int:
    changed = (
        store.moderation.add_terms(trkref, folded)
        if add
        else store.moderation.remove_terms(trkref, folded)
    )
    if changed is None:
        raise OrganisationNotFound(trkref)
    return changed


def list_blocked_terms(store: Storage, trkref: str) -> list[str]:
    """Every blocked term of an organisation, in the order of their code points."""
    terms = store.moderation.list_terms(trkref)
    if terms is None:
        raise OrganisationNotFound(trkref)
    return terms


def _checked(caller: Caller, trkref: str, check: Callable[[list[FieldViolation]], T]) -> T:
    """What each route of blocked terms checks, in the order the other moderator's routes
    do: the caller's role, the request (`check` its own fields), the organisation's reach."""
    check_moderator(caller)
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", trkref)
    checked = check(violations)
    if violations:
        raise InvalidRequest(violations)
    if trkref not in caller.organisations:
        raise OrganisationNotFound(trkref)
    return checked


async def create_blocked_term(store: Storage, trkref: str, term: str, caller: Caller) -> str:
    """Block a term (AIP-133); the term as stored. BlockedTermExists when it is already."""
    folded = _checked(caller, trkref, lambda v: fold_term(v, "blocked_term.term", term))
    if not await asyncio.to_thread(_change, store, trkref, [folded], True):
        raise BlockedTermExists(folded)
    return folded


async def delete_blocked_term(store: Storage, trkref: str, term: str, caller: Caller) -> None:
    """Unblock a term named in any form that folds to the stored one (AIP-135)."""
    folded = _checked(caller, trkref, lambda v: fold_term(v, "term", term))
    if not await asyncio.to_thread(_change, store, trkref, [folded], False):
        raise BlockedTermNotFound(folded)


async def read_blocked_terms(
    store: Storage, trkref: str, page_size: int, page_token: str, caller: Caller
) -> tuple[list[str], str]:
    """A page of the organisation's blocked terms, in the order of their code points, and
    the next page's token."""
    query = ModerationQuery("blocked_terms", trkref)
    _checked(caller, trkref, lambda v: check_page_size(v, "page_size", page_size))
    secret = await store.page_token_secret()
    after = page_tokens.text_after(secret, query, page_token)
    if await store.organisations.known(trkref) is None:
        raise OrganisationNotFound(trkref)
    size = min(page_size or PAGE_SIZE, PAGE_SIZE_MAX)
    terms, more = await store.moderation.terms_page(trkref, after, size)
    return terms, page_tokens.issue(secret, query, (terms[-1],)) if more else ""
