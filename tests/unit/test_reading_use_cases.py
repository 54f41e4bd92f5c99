"""Detail and List over the in-memory FakeStorage: what a caller may read, page by page."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from harness.support import CALLER, create
from harness.support import NEW_CONVERSATION as NEW
from server.service import conversations
from server.service.conversations import ListRequest
from server.service.domain import Conversation, ConversationPage
from server.service.errors import (
    ConversationNotFound,
    FieldViolation,
    InvalidRequest,
    OrganisationNotFound,
    Reason,
)
from tests.unit.fakes import FakeStorage

ORDERS = (
    "must be one of 'created_at desc', 'created_at asc', 'helpful desc', 'answers_count desc', "
    "'relevance'"
)


def listed(store: FakeStorage, request: ListRequest) -> tuple[ConversationPage, str]:
    return asyncio.run(conversations.list_conversations(store, request, CALLER))


def detail(store: FakeStorage, trkref: str, conversation_id: int) -> Conversation:
    return asyncio.run(conversations.get_conversation(store, trkref, conversation_id, CALLER))


def test_detail_reads_a_conversation_of_the_caller_s_organisation(store: FakeStorage) -> None:
    created = create(store, NEW, CALLER)
    assert detail(store, "D10", created.id) == created


@pytest.mark.parametrize(("trkref", "conversation_id"), [("E20", 1), ("D10", 2)])
def test_detail_out_of_reach_or_missing_is_not_found_with_its_id(
    store: FakeStorage, trkref: str, conversation_id: int
) -> None:
    create(store, NEW, CALLER)
    with pytest.raises(ConversationNotFound) as raised:
        detail(store, trkref, conversation_id)
    assert raised.value.conversation_id == conversation_id


def test_detail_of_a_conversation_of_another_organisation_is_not_found(
    store: FakeStorage,
) -> None:
    created = create(store, NEW, CALLER)
    wider = replace(CALLER, organisations=frozenset({"D10", "E20"}))
    with pytest.raises(ConversationNotFound):
        asyncio.run(conversations.get_conversation(store, "E20", created.id, wider))


def test_detail_with_a_bad_trkref_is_invalid(store: FakeStorage) -> None:
    with pytest.raises(InvalidRequest) as raised:
        detail(store, "D 10", 1)
    assert [v.field for v in raised.value.violations] == ["trkref"]


def test_list_pages_through_every_conversation_once(store: FakeStorage) -> None:
    created = [create(store, replace(NEW, first_name=f"S{n}"), CALLER) for n in range(5)]
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page, token = listed(store, ListRequest("D10", "S1", page_size=2, page_token=token))
        pages += 1
        seen += [c.id for c in page.conversations]
        assert (page.question_count, len(page.conversations) <= 2) == (5, True)
        if not token:
            break
    assert sorted(seen) == [c.id for c in created] and pages == 3


def test_list_defaults_to_20_newest_first_and_caps_the_page_at_100(store: FakeStorage) -> None:
    for n in range(101):
        create(store, replace(NEW, first_name=f"S{n}"), CALLER)
    default, token = listed(store, ListRequest("D10", "S1"))
    largest, _ = listed(store, ListRequest("D10", "S1", page_size=1000))
    assert len(default.conversations) == 20 and token
    assert [c.id for c in default.conversations] == list(range(101, 81, -1))
    assert len(largest.conversations) == 100


def test_list_orders_and_filters_by_locale_in_any_case(store: FakeStorage) -> None:
    create(store, NEW, CALLER)
    french = create(store, replace(NEW, locale="fr-fr"), CALLER)
    page, _ = listed(store, ListRequest("D10", "S1", locale="FR-FR", order_by=" created_at   asc "))
    assert [c.id for c in page.conversations] == [french.id]
    assert french.locale == "fr-FR"


def test_a_page_token_of_another_query_is_not_a_page_token(store: FakeStorage) -> None:
    for n in range(3):
        create(store, replace(NEW, first_name=f"S{n}"), CALLER)
    _, token = listed(store, ListRequest("D10", "S1", page_size=1))
    with pytest.raises(InvalidRequest) as raised:
        listed(
            store, ListRequest("D10", "S1", page_size=1, page_token=token, order_by="helpful desc")
        )
    assert raised.value.violations == [
        FieldViolation("page_token", Reason.NOT_A_PAGE_TOKEN, "is not a page token of this request")
    ]


def test_every_bad_list_parameter_is_named_at_once(store: FakeStorage) -> None:
    request = ListRequest("D 10", "", locale="english", page_size=-1, order_by="newest")
    with pytest.raises(InvalidRequest) as raised:
        listed(store, request)
    assert [(v.field, v.reason) for v in raised.value.violations] == [
        ("trkref", Reason.NOT_A_TRKREF),
        ("locale", Reason.NOT_A_LANGUAGE_TAG),
        ("page_size", Reason.NEGATIVE),
        ("order_by", Reason.UNKNOWN_ORDER),
    ]
    assert raised.value.violations[2].description == "must not be negative"
    assert raised.value.violations[3].description == ORDERS


@pytest.mark.parametrize("trkref", ["E20", "F30"])
def test_list_of_an_organisation_out_of_reach_or_unknown_is_not_found(
    store: FakeStorage, trkref: str
) -> None:
    wider = replace(CALLER, organisations=frozenset({"D10", "F30"}))
    with pytest.raises(OrganisationNotFound) as raised:
        asyncio.run(conversations.list_conversations(store, ListRequest(trkref, "S1"), wider))
    assert raised.value.trkref == trkref
