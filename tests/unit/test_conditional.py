"""Entity tags and If-None-Match (server/service/conditional.py) over the FakeStorage."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import pytest

from harness.support import CALLER, answer, create, vote
from harness.support import NEW_CONVERSATION as NEW
from server.service import conditional
from server.service.answer_pages import ListAnswersRequest
from server.service.conversations import ListRequest
from server.service.domain import NewAnswer
from server.service.errors import ConversationNotFound, InvalidRequest, OrganisationNotFound
from tests.unit.fakes import FakeStorage

TAG = '"abc"'


@pytest.mark.parametrize(
    ("values", "matched"),
    [
        (['"abc"'], True),
        (['W/"abc"'], True),  # weak comparison
        (['"x", W/"abc"'], True),
        ([' ,"x" ,, "abc" , '], True),
        (['"a,bc", "abc"'], True),  # a comma inside a tag is part of it
        (["*"], True),
        ([" * "], True),
        (['"x"', '"abc"'], True),  # one header among several
        (['"x"'], False),
        ([], False),
        ([""], False),
        (['"ab"'], False),
        (['"abcd"'], False),
        (['W/W/"abc"'], False),  # not a list of entity-tags: names nothing
        (['"abc'], False),
        (["abc"], False),
        (['"x""abc"'], False),
        (['"ab c"'], False),
        (["**"], False),
        (['"abc" junk'], False),
        ([", ".join(f'"{n}"' for n in range(5000)) + ', "abc"'], True),
        (['"' + "a" * 100_000 + '"'], False),
    ],
)
def test_if_none_match_names_a_tag_by_weak_comparison(values: Sequence[str], matched: bool) -> None:
    assert conditional.none_match(values, TAG) is matched


def test_a_tag_is_strong_and_quoted_and_depends_on_the_key_the_query_and_the_stamp() -> None:
    tag = conditional.entity_tag(b"k", ("detail", "D10", 1), (1, 0, 1))
    assert re.fullmatch(r'"[A-Za-z0-9_-]{22}"', tag)
    assert tag == conditional.entity_tag(b"k", ("detail", "D10", 1), (1, 0, 1))
    others = {
        conditional.entity_tag(b"j", ("detail", "D10", 1), (1, 0, 1)),
        conditional.entity_tag(b"k", ("detail", "D10", 2), (1, 0, 1)),
        conditional.entity_tag(b"k", ("detail", "E20", 1), (1, 0, 1)),
        conditional.entity_tag(b"k", ("detail", "D10", 1), (1, 0, 2)),
    }
    assert tag not in others and len(others) == 4


def detail(store: FakeStorage, conversation_id: int, *sent: str) -> conditional.Tagged[object]:
    found = conditional.get_conversation(store, "D10", conversation_id, CALLER, sent)
    return asyncio.run(found)  # type: ignore[arg-type]


def test_a_detail_matched_is_answered_after_the_stamp_alone(store: FakeStorage) -> None:
    created = create(store, NEW, CALLER)
    first = detail(store, created.id)
    assert first.value == created and first.tag is not None
    store.calls.clear()
    again = detail(store, created.id, first.tag)
    assert again == conditional.Tagged(first.tag, None)
    assert store.calls["conversation_stamp"] == 1 and store.calls["read_conversation"] == 0
    answer(store, NewAnswer("D10", created.id, "Yes.", "Ann"), CALLER)
    answered = detail(store, created.id, first.tag)
    assert answered.value is not None and answered.tag != first.tag
    vote(store, CALLER, target="conversation", target_id=created.id, counter="helpful",
         trkref="D10", voter_id="")  # fmt: skip
    assert detail(store, created.id).tag not in (first.tag, answered.tag)


def test_a_list_of_a_product_is_tagged_by_its_query_and_an_organisation_wide_one_is_not(
    store: FakeStorage,
) -> None:
    create(store, NEW, CALLER)

    def listed(request: ListRequest, *sent: str) -> conditional.Tagged[object]:
        found = conditional.list_conversations(store, request, CALLER, sent)
        return asyncio.run(found)  # type: ignore[arg-type]

    first = listed(ListRequest("D10", NEW.sku))
    assert first.tag is not None and first.value is not None
    store.calls.clear()
    assert listed(ListRequest("D10", NEW.sku), "*").value is None
    assert store.calls["read_page"] == 0 and store.calls["product_stamp"] == 1
    others = [
        ListRequest("D10", NEW.sku, page_size=1),
        ListRequest("D10", NEW.sku, locale="en-GB"),
        ListRequest("D10", NEW.sku, order_by="helpful desc"),
        ListRequest("D10", NEW.sku, search="product"),
        ListRequest("D10", NEW.sku, filter="answered = true"),
        ListRequest("D10", NEW.sku, answers_page_size=1),
    ]
    tags = {listed(request).tag for request in others}
    assert len(tags) == len(others) and first.tag not in tags
    wide = listed(ListRequest("D10"), "*")
    assert wide.tag is None and wide.value is not None
    with pytest.raises(InvalidRequest):
        listed(ListRequest("D10", NEW.sku, page_size=-1), "*")
    with pytest.raises(OrganisationNotFound):
        listed(ListRequest("E20", NEW.sku), "*")


def test_answers_of_another_organisation_s_conversation_are_not_found_whatever_is_sent(
    store: FakeStorage,
) -> None:
    created = create(store, NEW, CALLER)
    for trkref in ("E20", "D10"):
        asked = ListAnswersRequest(trkref, created.id + (trkref == "D10") * 1000)
        with pytest.raises(ConversationNotFound):
            asyncio.run(conditional.list_answers(store, asked, CALLER, ["*"]))
    found = asyncio.run(
        conditional.list_answers(store, ListAnswersRequest("D10", created.id), CALLER, ["*"])
    )
    assert found.value is None and found.tag is not None
    assert store.calls["read_answers"] == 0
