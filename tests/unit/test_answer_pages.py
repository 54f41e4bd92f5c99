"""The list_answers use case and the answers a List or a Detail embeds, over FakeStorage."""

from __future__ import annotations

import asyncio
import datetime
import functools
import operator

import pytest

from harness.support import CALLER, answer, create, store_key
from server.service import answer_pages, conversations
from server.service.answer_pages import ListAnswersRequest, list_answers
from server.service.domain import NewAnswer, NewConversation
from server.service.errors import ConversationNotFound, InvalidRequest, PermissionDenied, Reason
from tests.unit.fakes import FakeStorage

QUESTION = NewConversation(trkref="D10", first_name="Ann", question="Fits?", sku="S1")


def answered(store: FakeStorage, count: int) -> int:
    conversation_id = create(store, QUESTION, CALLER).id
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for n in range(count):
        at = functools.partial(operator.add, start, datetime.timedelta(seconds=n))
        answer(store, NewAnswer("D10", conversation_id, f"Answer {n}", "Bo"), CALLER, at)
    return conversation_id


def walk(store: FakeStorage, conversation_id: int, token: str, size: int) -> list[str]:
    responses: list[str] = []
    while True:
        asked = ListAnswersRequest("D10", conversation_id, size, token)
        page, token = asyncio.run(list_answers(store, asked, CALLER))
        responses += [a.response for a in page.answers]
        if not token:
            return responses


def test_a_detail_embeds_its_first_page_and_its_token_leads_to_the_rest(
    store: FakeStorage,
) -> None:
    conversation_id = answered(store, answer_pages.DETAIL_ANSWERS + 3)
    found = asyncio.run(conversations.get_conversation(store, "D10", conversation_id, CALLER))
    assert len(found.answers) == answer_pages.DETAIL_ANSWERS
    rest = walk(store, conversation_id, found.answers_next_page_token, 2)
    assert rest == [f"Answer {n}" for n in range(answer_pages.DETAIL_ANSWERS, found.answers_count)]


@pytest.mark.parametrize(("asked", "embedded"), [(None, 3), (0, 0), (1, 1), (5, 5), (99, 5)])
def test_a_list_embeds_answers_page_size_answers_at_most_five(
    store: FakeStorage, asked: int | None, embedded: int
) -> None:
    conversation_id = answered(store, 7)
    request = conversations.ListRequest("D10", "S1", answers_page_size=asked)
    page, _ = asyncio.run(conversations.list_conversations(store, request, CALLER))
    [listed] = page.conversations
    assert len(listed.answers) == embedded and listed.answers_count == 7
    rest = walk(store, conversation_id, listed.answers_next_page_token, 3)
    assert rest == [f"Answer {n}" for n in range(embedded, 7)]


def test_a_token_of_one_conversation_is_no_token_of_another(store: FakeStorage) -> None:
    first, second = answered(store, 3), answered(store, 3)
    asked = ListAnswersRequest("D10", first, 1)
    _, token = asyncio.run(list_answers(store, asked, CALLER))
    with pytest.raises(InvalidRequest):
        asyncio.run(list_answers(store, ListAnswersRequest("D10", second, 1, token), CALLER))


def test_bad_parameters_are_listed_and_a_stranger_conversation_is_not_found(
    store: FakeStorage,
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        asyncio.run(list_answers(store, ListAnswersRequest("", 0, -1), CALLER))
    assert [v.field for v in raised.value.violations] == [
        "trkref",
        "conversation_id",
        "page_size",
    ]
    conversation_id = answered(store, 1)
    with pytest.raises(ConversationNotFound):
        asyncio.run(list_answers(store, ListAnswersRequest("E20", conversation_id), CALLER))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("answered = true", "unknown field 'answered': one of status"),
        ('created_at >= "2026-01-01T00:00:00Z"', "unknown field 'created_at': one of status"),
        ("status = pending", "status takes = and one of PENDING, PUBLISHED, REJECTED"),
        ("status != PENDING", "status takes = and one of PENDING, PUBLISHED, REJECTED"),
        ("status = ERASED", "status takes = and one of PENDING, PUBLISHED, REJECTED"),
        ("status = PENDING AND status = REJECTED", "status is given twice"),
        ("status = PENDING OR status = REJECTED", "OR is not supported: join comparisons with AND"),
        ("NOT status = PENDING", "NOT is not supported: join comparisons with AND"),
        ("(status = PENDING)", "'(' is not allowed: a filter is comparisons joined by AND"),
        ('status = "PENDING', "has a string without its closing double quote"),
        ("status = PENDING AND", "ends with AND: a comparison must follow it"),
        ("status = PENDING\u0000", "'\\x00' is not allowed: a filter is comparisons joined by AND"),
        ("status = PENDING" + " " * 1000, "must be at most 1000 characters"),
    ],
)
def test_a_list_answers_filter_outside_its_subset_is_refused_with_what_is_wrong(
    store: FakeStorage, text: str, message: str
) -> None:
    conversation_id = answered(store, 1)
    moderator = store_key(store, "moderator", "D10", role="moderator")
    for caller in (moderator, CALLER):  # refused as invalid before the role is checked
        asked = ListAnswersRequest("D10", conversation_id, filter=text)
        with pytest.raises(InvalidRequest) as raised:
            asyncio.run(list_answers(store, asked, caller))
        assert [(v.field, v.reason, v.description) for v in raised.value.violations] == [
            ("filter", Reason.INVALID_FILTER, message)
        ]


def test_a_status_filter_is_a_moderators_and_its_token_is_bound_to_it(store: FakeStorage) -> None:
    conversation_id = answered(store, 3)
    moderator = store_key(store, "moderator", "D10", role="moderator")
    with pytest.raises(PermissionDenied):
        asked = ListAnswersRequest("D10", conversation_id, filter="status = PUBLISHED")
        asyncio.run(list_answers(store, asked, CALLER))
    asked = ListAnswersRequest("D10", conversation_id, 1, filter="status = PUBLISHED")
    _, token = asyncio.run(list_answers(store, asked, moderator))
    for caller, chosen in [(moderator, ""), (moderator, "status = PENDING"), (CALLER, "")]:
        other = ListAnswersRequest("D10", conversation_id, 1, token, chosen)
        with pytest.raises(InvalidRequest):
            asyncio.run(list_answers(store, other, caller))
    same = ListAnswersRequest("D10", conversation_id, 1, token, "status = PUBLISHED")
    page, _ = asyncio.run(list_answers(store, same, moderator))
    assert [a.response for a in page.answers] == ["Answer 1"]
