"""Search, filters and the organisation-wide List on real databases, against plain Python.

Texts are made of product words whose forms differ in no language PostgreSQL stems
(so that "a word appears" means the same to every database and to Python), with case,
accents and punctuation varied.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playhouse.migrations import Runner

from harness.support import CALLER, add_organisation_with_key, answer, create, store_key
from server.package_data import MIGRATIONS
from server.service import conversations
from server.service.conversations import ListRequest
from server.service.domain import (
    ORDERS,
    SEARCH_ORDER,
    SHOPPER,
    Caller,
    Conversation,
    ConversationPage,
    NewAnswer,
    NewConversation,
    Organisation,
)
from server.service.errors import InvalidRequest
from server.service.organisations import add_organisation
from server.storage.listing import page_key
from server.storage.store import Store
from tests.integration.test_reading import statements_of
from tests.unit.fakes import listed

WORDS = ["battery", "cable", "charger", "screen", "zipper", "kettle", "café", "blender"]
# Only in the other organisation's texts.
ELSEWHERE = "zeppelin"
SKUS = ["S1", "S2", "S3"]
LOCALES = ["en-GB", "fr-FR", "ja-JP"]
START = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
MIGRATION = "0010_search_and_organisation_lists"
E20 = Organisation(trkref="E20", name="Second retailer", locale="de-DE")


def at(seconds: int) -> conversations.Clock:
    return lambda: START + datetime.timedelta(seconds=seconds)


def text(rng: random.Random, extra: list[str] | None = None) -> str:
    """A few words, in any case, some with punctuation."""
    chosen = rng.sample(WORDS, rng.randint(1, 3)) + (extra or [])
    styled = [
        rng.choice([w, w.upper(), w.title()]) + rng.choice(["", "?", ",", "!"]) for w in chosen
    ]
    return " ".join(styled)


def fill(store: Store) -> list[Conversation]:
    """D10's conversations (with answers, some by the retailer), and E20's with the same
    words; returns D10's as stored."""
    add_organisation_with_key(store)
    add_organisation(store, E20)
    other = store_key(store, "other", "E20")
    rng = random.Random(31)
    ids = []
    for n in range(36):
        # Some asked in the same second, so that ties follow the ids.
        new = NewConversation("D10", "A shopper", text(rng), rng.choice(SKUS), rng.choice(LOCALES))
        ids.append(create(store, new, CALLER, at(n // 2)).id)
        create(store, replace(new, trkref="E20", question=text(rng, [ELSEWHERE])), other)
    for n in range(30):
        retailer = rng.random() < 0.4
        extra = {"retailer_name": "R", "retailer_image_url": "https://r.example/a.png"}
        answer(
            store,
            NewAnswer(
                "D10",
                rng.choice(ids[:24]),
                response=text(rng),
                first_name="An owner",
                response_type="retailer" if retailer else "owner",
                **(extra if retailer else {}),
            ),
            CALLER,
            at(100 + n),
        )
    return [conversations_get(store, i) for i in ids]


def conversations_get(store: Store, conversation_id: int) -> Conversation:
    return asyncio.run(conversations.get_conversation(store, "D10", conversation_id, CALLER))


def walk(store: Store, request: ListRequest, caller: Caller = CALLER) -> list[Conversation]:
    """Every conversation of a List, page after page, checking each page's summary."""
    found: list[Conversation] = []
    token, summaries = "", set()
    for _ in range(200):
        asked = replace(request, page_token=token)
        page, token = asyncio.run(conversations.list_conversations(store, asked, caller))
        assert len(page.conversations) <= (request.page_size or 20)
        found.extend(page.conversations)
        summaries.add((page.question_count, page.answers_count))
        if not token:
            assert summaries == {(len(found), sum(c.answers_count for c in found))}
            return found
    raise AssertionError("more pages than conversations")


filters = st.lists(
    st.sampled_from(
        [
            "answered = true",
            "answered = false",
            "has_retailer_answer = true",
            "has_retailer_answer = false",
            'created_at >= "2026-03-01T00:00:05Z"',
            'created_at < "2026-03-01T02:00:12+02:00"',
        ]
    ),
    max_size=3,
    unique_by=lambda term: tuple(term.split()[:2]),
).map(" AND ".join)
searches = st.lists(
    st.sampled_from([*WORDS, "CAFE", "Cafe", "BATTERY", ELSEWHERE]), max_size=2
).map(lambda words: " ".join(words))


@pytest.fixture
def stored(store: Store) -> list[Conversation]:
    return fill(store)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sku=st.sampled_from(["", *SKUS]),
    locale=st.sampled_from([None, *LOCALES]),
    chosen=filters,
    search=searches,
    order=st.sampled_from(["", *ORDERS]),
    size=st.integers(1, 7),
)
def test_pages_hold_exactly_the_matching_conversations_in_order(
    store: Store,
    stored: list[Conversation],
    sku: str,
    locale: str | None,
    chosen: str,
    search: str,
    order: str,
    size: int,
) -> None:
    request = ListRequest("D10", sku, locale, size, "", order, search, chosen)
    if order == SEARCH_ORDER and not search:
        with pytest.raises(InvalidRequest):
            walk(store, request)
        return
    query = conversations._page_query(request, SHOPPER)
    found = walk(store, request)
    expected = [c for c in stored if listed(c, query)]
    assert len({c.id for c in found}) == len(found)
    if query.order == SEARCH_ORDER:
        # The databases rank; every match is there once.
        assert sorted(c.id for c in found) == sorted(c.id for c in expected)
        return
    ordered = sorted(
        expected,
        key=lambda c: page_key(query.order, c),
        reverse=not query.order.endswith(" asc"),
    )
    assert [c.id for c in found] == [c.id for c in ordered]


def test_the_fixture_has_something_of_every_kind(stored: list[Conversation]) -> None:
    assert {c.sku for c in stored} == set(SKUS)
    assert {c.locale for c in stored} == set(LOCALES)
    assert any(c.answers_count == 0 for c in stored)
    responses = [a.response_type for c in stored for a in c.answers]
    assert {"owner", "retailer"} <= set(responses)


def test_another_organisations_text_never_matches(store: Store, stored: list[Conversation]) -> None:
    assert walk(store, ListRequest("D10", search=ELSEWHERE)) == []
    both = store_key(store, "both", "D10", "E20")
    theirs = walk(store, ListRequest("E20", search=ELSEWHERE), both)
    assert len(theirs) == 36
    assert {c.trkref for c in theirs} == {"E20"}


def test_accents_and_case_are_folded(store: Store, stored: list[Conversation]) -> None:
    with_cafe = {c.id for c in stored if any("café" in t.lower() for t in texts(c))}
    assert with_cafe
    for spelling in ("cafe", "CAFÉ", "Café"):
        assert {c.id for c in walk(store, ListRequest("D10", search=spelling))} == with_cafe


def test_answers_text_is_searched(store: Store, stored: list[Conversation]) -> None:
    only_in_answers = [
        c
        for c in stored
        if "kettle" not in c.question.lower() and any("kettle" in t.lower() for t in texts(c))
    ]
    assert only_in_answers
    found = {c.id for c in walk(store, ListRequest("D10", search="kettle"))}
    assert {c.id for c in only_in_answers} <= found


def test_an_answer_written_after_a_read_is_searched_at_once(
    store: Store, stored: list[Conversation]
) -> None:
    target = stored[-1]
    request = ListRequest("D10", target.sku, search="hinge")
    assert walk(store, request) == []
    answer(store, NewAnswer("D10", target.id, "Check the hinge.", "Bo"), CALLER)
    assert [c.id for c in walk(store, request)] == [target.id]


def test_the_answering_queue_sees_a_write_to_any_product_at_once(
    store: Store, stored: list[Conversation]
) -> None:
    queue = ListRequest("D10", filter="answered = false", order_by="created_at asc")
    before = walk(store, queue)
    answer(store, NewAnswer("D10", before[0].id, "Yes.", "Bo"), CALLER)
    after = walk(store, queue)
    assert [c.id for c in after] == [c.id for c in before[1:]]


def texts(conversation: Conversation) -> list[str]:
    return [conversation.question, *(a.response for a in conversation.answers)]


# The read cache


def read(store: Store, request: ListRequest) -> ConversationPage:
    return asyncio.run(conversations.list_conversations(store, request, CALLER))[0]


def test_a_searched_and_filtered_page_of_a_product_is_kept_until_the_product_changes(
    store: Store, stored: list[Conversation]
) -> None:
    sku = stored[0].sku
    request = ListRequest("D10", sku, search="battery", filter="answered = false")
    first = read(store, request)
    assert len(statements_of(store, lambda: read(store, request))) == 1  # the stamp only
    assert read(store, request) is first
    # Another search of the same product is another key.
    assert read(store, replace(request, search="cable")) is not first
    target = next(c for c in stored if c.sku == sku and c.answers_count == 0)
    answer(store, NewAnswer("D10", target.id, "Yes.", "Bo"), CALLER)
    after = read(store, request)
    assert target.id not in [c.id for c in after.conversations]
    was_listed = target.id in [c.id for c in first.conversations]
    assert after.question_count == first.question_count - was_listed


def test_an_organisation_wide_page_is_never_kept(store: Store, stored: list[Conversation]) -> None:
    request = ListRequest("D10", page_size=1)
    before = read(store, request)
    assert len(statements_of(store, lambda: read(store, request))) >= 3
    created = create(store, NewConversation("D10", "A", "New?", "S9"), CALLER, at(10_000))
    after = read(store, request)
    assert [c.id for c in after.conversations] == [created.id]
    assert after.question_count == before.question_count + 1


def test_the_search_migration_reverts_and_applies_again_with_every_text(
    store: Store, stored: list[Conversation]
) -> None:
    runner = Runner(store.db, str(MIGRATIONS))
    with store.reading():
        # The migrations that follow it are reverted first and applied again.
        later = [
            "0011_moderation",
            "0012_reports",
            "0013_search_published_answers",
            "0014_folded_blocked_terms",
            "0015_revisions_by_triggers",
        ]
        assert runner.down(MIGRATION) == [*reversed(later), MIGRATION]
        assert runner.up() == [MIGRATION, *later]
    with_kettle = [c.id for c in stored if any("kettle" in t.lower() for t in texts(c))]
    found = walk(store, ListRequest("D10", search="kettle", order_by="created_at asc"))
    assert [c.id for c in found] == sorted(with_kettle)


def test_the_words_that_scope_the_index_are_not_searchable(
    store: Store, stored: list[Conversation]
) -> None:
    sku_hex = stored[0].sku.encode().hex()
    for word in ("o1", "scope", f"p1x{sku_hex}", "o", "question", "answers"):
        assert walk(store, ListRequest("D10", search=word)) == []
        assert walk(store, ListRequest("D10", stored[0].sku, search=word)) == []
