"""Blocked terms' use cases over the in-memory FakeStorage: folding, validation, the
moderator's role, the organisation's reach, pages."""

from __future__ import annotations

import asyncio

import pytest

from harness.support import CALLER
from server.service import blocked_terms
from server.service.domain import Caller
from server.service.errors import (
    BlockedTermExists,
    BlockedTermNotFound,
    InvalidRequest,
    OrganisationNotFound,
    PermissionDenied,
)
from tests.unit.fakes import FakeStorage

MODERATOR = Caller("moderator-key", frozenset({"D10"}), role="moderator")


def create(store: FakeStorage, term: str, caller: Caller = MODERATOR, trkref: str = "D10") -> str:
    return asyncio.run(blocked_terms.create_blocked_term(store, trkref, term, caller))


def delete(store: FakeStorage, term: str, caller: Caller = MODERATOR, trkref: str = "D10") -> None:
    asyncio.run(blocked_terms.delete_blocked_term(store, trkref, term, caller))


def page(
    store: FakeStorage, size: int = 0, token: str = "", caller: Caller = MODERATOR
) -> tuple[list[str], str]:
    return asyncio.run(blocked_terms.read_blocked_terms(store, "D10", size, token, caller))


@pytest.mark.parametrize(
    ("term", "stored"),
    [
        ("spam", "spam"),
        ("Buy-NOW!", "buy now"),
        ("  buy   now  ", "buy now"),
        ("Spám", "spam"),
        ("\uff33\uff30\uff21\uff2d", "spam"),  # full-width
        ("s\u200bpam", "spam"),  # a zero-width space inside
        ("\ufb01ne", "fine"),  # a ligature
        ("KIRMIZI", "kirmizi"),
        ("売り切れ", "売り切れ"),
    ],
)
def test_a_term_is_stored_folded(store: FakeStorage, term: str, stored: str) -> None:
    assert create(store, term) == stored
    assert page(store) == ([stored], "")


def test_a_term_blocked_in_another_spelling_exists_already(store: FakeStorage) -> None:
    create(store, "Spam")
    with pytest.raises(BlockedTermExists) as raised:
        create(store, "SPÁM!")
    assert str(raised.value) == "the blocked term 'spam' already exists"
    assert store.moderation.terms == {"D10": {"spam"}}


def test_a_delete_names_the_term_in_any_spelling_and_a_missing_one_is_not_found(
    store: FakeStorage,
) -> None:
    create(store, "buy now")
    delete(store, "Buy-Now")
    assert page(store) == ([], "")
    with pytest.raises(BlockedTermNotFound) as raised:
        delete(store, "buy now")
    assert str(raised.value) == "the blocked term 'buy now' does not exist"


def test_pages_follow_the_order_of_code_points(store: FakeStorage) -> None:
    for term in ("zebra", "ω", "10", "apple", "日本"):
        create(store, term)
    first, token = page(store, 2)
    assert first == ["10", "apple"] and token
    second, token = page(store, 2, token)
    assert second == ["zebra", "ω"] and token
    assert page(store, 2, token) == (["日本"], "")
    assert page(store, 1000)[0] == ["10", "apple", "zebra", "ω", "日本"]


def test_a_token_of_another_list_or_a_forged_one_is_invalid(store: FakeStorage) -> None:
    for term in ("a", "b"):
        create(store, term)
    _, token = page(store, 1)
    for bad in ("forged", "a.b", token + "x", token.replace(".", "x.")):
        with pytest.raises(InvalidRequest) as raised:
            page(store, 1, bad)
        assert [v.reason for v in raised.value.violations] == ["NOT_A_PAGE_TOKEN"]


@pytest.mark.parametrize(
    ("term", "reason"),
    [
        ("", "REQUIRED"),
        ("   ", "REQUIRED"),
        ("\u200b\u200d\ufeff", "REQUIRED"),  # invisible format characters only
        ("x" * 201, "TOO_LONG"),
        ("x" * 10_000, "TOO_LONG"),
        ("a\u0000b", "CONTROL_CHARACTER"),
        ("a\nb", "CONTROL_CHARACTER"),
        ("a\u202eb", "BIDI_CONTROL"),
        ("!!!", "NOTHING_TO_MATCH"),
        ("\u3164", "NOTHING_TO_MATCH"),  # the Hangul filler: a letter that shows nothing
        ("\u0301\u0301", "NOTHING_TO_MATCH"),  # accents alone
        ("\ufdfa" * 12, "TOO_LONG"),  # 12 characters, 216 once folded
    ],
)
def test_hostile_terms_are_refused_by_the_api_and_the_command_line(
    store: FakeStorage, term: str, reason: str
) -> None:
    with pytest.raises(InvalidRequest) as created:
        create(store, term)
    assert [(v.field, v.reason) for v in created.value.violations] == [
        ("blocked_term.term", reason)
    ]
    with pytest.raises(InvalidRequest) as deleted:
        delete(store, term)
    assert [(v.field, v.reason) for v in deleted.value.violations] == [("term", reason)]
    with pytest.raises(InvalidRequest) as added:
        blocked_terms.change_blocked_terms(store, "D10", ["fine", term], add=True)
    assert [(v.field, v.reason) for v in added.value.violations] == [("term", reason)]
    assert store.moderation.terms.get("D10", set()) == set()


def test_every_bad_field_is_listed_at_once(store: FakeStorage) -> None:
    with pytest.raises(InvalidRequest) as raised:
        asyncio.run(blocked_terms.create_blocked_term(store, "D 10", "", MODERATOR))
    assert [v.field for v in raised.value.violations] == ["trkref", "blocked_term.term"]
    with pytest.raises(InvalidRequest) as listed:
        asyncio.run(blocked_terms.read_blocked_terms(store, "", -1, "", MODERATOR))
    assert [v.field for v in listed.value.violations] == ["trkref", "page_size"]


def test_a_shopper_key_is_denied_before_anything_is_checked(store: FakeStorage) -> None:
    for call in (
        lambda: create(store, "", CALLER, "Z99"),
        lambda: delete(store, "spam", CALLER),
        lambda: page(store, -1, "forged", CALLER),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert store.calls["terms_page"] == 0


def test_an_organisation_out_of_reach_is_the_missing_one(store: FakeStorage) -> None:
    other = Caller("rival-key", frozenset({"E20"}), role="moderator")
    create(store, "spam")
    for call in (
        lambda: create(store, "spam", other),
        lambda: delete(store, "spam", other),
        lambda: asyncio.run(blocked_terms.read_blocked_terms(store, "D10", 0, "", other)),
        lambda: create(store, "spam", MODERATOR, "E20"),
    ):
        with pytest.raises(OrganisationNotFound):
            call()
    assert store.moderation.terms == {"D10": {"spam"}}


def test_the_command_line_adds_each_folded_term_once(store: FakeStorage) -> None:
    assert (
        blocked_terms.change_blocked_terms(store, "D10", ["Spam", "spam", "SPAM!"], add=True) == 1
    )
    assert blocked_terms.list_blocked_terms(store, "D10") == ["spam"]
    assert blocked_terms.change_blocked_terms(store, "D10", ["Spám"], add=False) == 1
    with pytest.raises(OrganisationNotFound):
        blocked_terms.change_blocked_terms(store, "Z99", ["spam"], add=True)
