"""Detail and List on real databases: ownership, pagination, orders, tokens and exact counts."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.support import CALLER, add_organisation_with_key, answer, create, store_key, vote
from server.service import conversations
from server.service.conversations import ListRequest
from server.service.domain import (
    Caller,
    Conversation,
    ConversationPage,
    NewAnswer,
    NewConversation,
    Organisation,
)
from server.service.errors import ConversationNotFound, InvalidRequest, OrganisationNotFound
from server.service.organisations import add_organisation
from server.storage.models import AnswerRow, ConversationRow
from server.storage.store import Store
from tests.integration.conftest import open_store

E20 = Organisation(trkref="E20", name="Second retailer", locale="de-DE")


def new(
    sku: str = "AIPTPDV5700", question: str = "How is this product?", **extra: Any
) -> NewConversation:
    return NewConversation(
        trkref="D10", first_name="A shopper", question=question, sku=sku, **extra
    )


def get(store: Store, trkref: str, conversation_id: int, caller: Caller = CALLER) -> Conversation:
    return asyncio.run(conversations.get_conversation(store, trkref, conversation_id, caller))


def page(
    store: Store, request: ListRequest, caller: Caller = CALLER
) -> tuple[ConversationPage, str]:
    return asyncio.run(conversations.list_conversations(store, request, caller))


def walk(store: Store, request: ListRequest, caller: Caller = CALLER) -> list[ConversationPage]:
    """Every page of a List, following the tokens (at most 1,000 pages)."""
    pages, token = [], ""
    for _ in range(1000):
        found, token = page(store, replace(request, page_token=token), caller)
        pages.append(found)
        if not token:
            return pages
    raise AssertionError("more than 1,000 pages")


def clock_at(seconds: int) -> conversations.Clock:
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        seconds=seconds
    )
    return lambda: moment


def add_answers(store: Store, conversation_id: int, count: int, trkref: str = "D10") -> None:
    """`count` answers through the use case, each older than the one before."""
    for n in range(count):
        answer(
            store,
            NewAnswer(trkref, conversation_id, response=f"answer {n}", first_name="An owner"),
            CALLER,
            clock_at(10_000 - n),
        )


# Detail


def test_detail_is_the_conversation_as_created_with_its_answers_oldest_first(
    store: Store, organisation: Organisation
) -> None:
    created = create(store, new(), CALLER)
    assert get(store, "D10", created.id) == created
    add_answers(store, created.id, 2)
    found = get(store, "D10", created.id)
    assert found.answers_count == 2
    assert [a.response for a in found.answers] == ["answer 1", "answer 0"]


def test_detail_is_not_found_alike_for_a_missing_id_another_organisation_and_one_out_of_reach(
    store: Store, organisation: Organisation
) -> None:
    add_organisation(store, E20)
    both = store_key(store, "both", "D10", "E20")
    created = create(store, new(), CALLER)
    messages = set()
    for trkref, conversation_id, caller in [
        ("D10", created.id + 1000, CALLER),  # no such id
        ("E20", created.id, both),  # another organisation's conversation
        ("E20", created.id, CALLER),  # an organisation out of the key's reach
    ]:
        with pytest.raises(ConversationNotFound) as raised:
            get(store, trkref, conversation_id, caller)
        messages.add(str(raised.value))
    assert len(messages) == 1


def test_detail_without_trkref_is_invalid(store: Store, organisation: Organisation) -> None:
    created = create(store, new(), CALLER)
    with pytest.raises(InvalidRequest) as raised:
        get(store, "", created.id)
    assert [v.field for v in raised.value.violations] == ["trkref"]


# List


def test_list_pages_newest_first_with_the_summary_of_the_whole_product(
    store: Store, organisation: Organisation
) -> None:
    created = [create(store, new(question=f"q{n}"), CALLER, clock_at(n)) for n in range(5)]
    create(store, new(sku="OTHER"), CALLER)
    add_answers(store, created[0].id, 2)
    pages = walk(store, ListRequest("D10", "AIPTPDV5700", page_size=2))
    assert [[c.id for c in p.conversations] for p in pages] == [
        [created[4].id, created[3].id],
        [created[2].id, created[1].id],
        [created[0].id],
    ]
    assert {(p.question_count, p.answers_count) for p in pages} == {(5, 2)}
    assert pages[-1].conversations[0].answers_count == 2


def test_list_filters_by_locale_whatever_its_case(store: Store, organisation: Organisation) -> None:
    british = create(store, new(locale="en-gb"), CALLER)
    create(store, new(locale="de-DE"), CALLER)
    defaulted = create(store, new(), CALLER)  # the organisation's en-GB
    [only] = walk(store, ListRequest("D10", "AIPTPDV5700", locale="EN-GB"))
    assert {c.id for c in only.conversations} == {british.id, defaulted.id}
    assert only.question_count == 2


def test_list_orders_by_helpful_most_first_then_newest(
    store: Store, organisation: Organisation
) -> None:
    ids = [create(store, new(), CALLER, clock_at(n)).id for n in range(4)]
    with store.session():
        for conversation_id, helpful in zip(ids, [3, 0, 3, 1], strict=True):
            ConversationRow.update(helpful=helpful).where(
                ConversationRow.id == conversation_id
            ).execute()
    pages = walk(store, ListRequest("D10", "AIPTPDV5700", page_size=1, order_by="helpful desc"))
    assert [p.conversations[0].id for p in pages] == [ids[2], ids[0], ids[3], ids[1]]


def test_list_page_size_defaults_to_20_and_is_at_most_100(
    store: Store, organisation: Organisation
) -> None:
    for n in range(105):
        create(store, new(question=f"q{n}"), CALLER)
    assert len(page(store, ListRequest("D10", "AIPTPDV5700"))[0].conversations) == 20
    assert (
        len(page(store, ListRequest("D10", "AIPTPDV5700", page_size=1000))[0].conversations) == 100
    )


def test_list_refuses_bad_parameters_all_at_once(store: Store, organisation: Organisation) -> None:
    with pytest.raises(InvalidRequest) as raised:
        page(store, ListRequest("D10", " ", locale="not a tag", page_size=-1, order_by="id"))
    fields = [v.field for v in raised.value.violations]
    assert fields == ["sku", "locale", "page_size", "order_by"]


def test_a_page_token_is_bound_to_its_query_and_tamper_evident(
    store: Store, organisation: Organisation
) -> None:
    add_organisation(store, E20)
    both = store_key(store, "both", "D10", "E20")
    for n in range(3):
        create(store, new(), CALLER, clock_at(n))
    request = ListRequest("D10", "AIPTPDV5700", page_size=1)
    _, token = page(store, request)
    assert page(store, replace(request, page_token=token, page_size=2))[0].conversations
    payload, signature = token.split(".")
    for changed in [
        replace(request, page_token=token, sku="OTHER"),
        replace(request, page_token=token, locale="en-GB"),
        replace(request, page_token=token, order_by="created_at asc"),
        replace(request, page_token=token, trkref="E20"),
        replace(request, page_token=payload[:-2] + "AA." + signature),
        replace(request, page_token=payload + "." + signature[::-1]),
        replace(request, page_token="not a token"),
        replace(request, page_token="é" * 500),
    ]:
        with pytest.raises(InvalidRequest) as raised:
            page(store, changed, both)
        assert [v.field for v in raised.value.violations] == ["page_token"]


def test_a_key_of_another_organisation_sees_nothing_of_its_conversations(
    store: Store, organisation: Organisation
) -> None:
    add_organisation(store, E20)
    outsider = store_key(store, "outsider", "E20")
    created = create(store, new(), CALLER)
    with pytest.raises(ConversationNotFound):
        get(store, "D10", created.id, outsider)
    with pytest.raises(OrganisationNotFound):
        page(store, ListRequest("D10", "AIPTPDV5700"), outsider)
    [empty] = walk(store, ListRequest("E20", "AIPTPDV5700"), outsider)
    assert (empty.conversations, empty.question_count) == ((), 0)


def statements_of(store: Store, read: Callable[[], object]) -> list[str]:
    """The SQL statements `read` runs on the store's database."""
    statements: list[str] = []
    execute = store.db.execute_sql

    def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args, **kwargs)  # type: ignore[no-untyped-call]

    store.db.execute_sql = counted  # type: ignore[method-assign]
    try:
        read()
    finally:
        store.db.execute_sql = execute  # type: ignore[method-assign]
    return statements


def test_a_page_costs_the_same_few_queries_however_many_answers(
    store: Store, organisation: Organisation
) -> None:
    for n in range(20):
        add_answers(store, create(store, new(), CALLER, clock_at(n)).id, 2)
    page(store, ListRequest("D10", "AIPTPDV5700", order_by="helpful desc"))  # the token key
    read: list[ConversationPage] = []
    first = statements_of(
        store, lambda: read.append(page(store, ListRequest("D10", "AIPTPDV5700"))[0])
    )
    assert sum(len(c.answers) for c in read[0].conversations) == 40
    assert len(first) == 3  # the counts, the conversations, their answers
    again = statements_of(
        store, lambda: read.append(page(store, ListRequest("D10", "AIPTPDV5700"))[0])
    )
    assert len(again) == 1  # the counts: the page is the one kept
    assert read[1] == read[0]


# The pages a Store keeps: each write that changes a product's pages is seen at once.


def _kept_then_read_again(
    store: Store, write: Callable[[list[Conversation]], object], request: ListRequest
) -> tuple[ConversationPage, ConversationPage]:
    before, _ = page(store, request)
    assert page(store, request)[0] is before  # kept
    write(list(before.conversations))
    after, _ = page(store, request)
    return before, after


@pytest.mark.parametrize("order", ["created_at desc", "helpful desc"])
def test_a_kept_page_is_read_again_after_a_vote_on_a_conversation(
    store: Store, organisation: Organisation, order: str
) -> None:
    for n in range(3):
        create(store, new(), CALLER, clock_at(n))

    def vote_oldest(shown: list[Conversation]) -> None:
        vote(store, CALLER, target="conversation", target_id=shown[-1].id, counter="helpful",
             trkref="D10")  # fmt: skip

    before, after = _kept_then_read_again(
        store, vote_oldest, ListRequest("D10", "AIPTPDV5700", order_by=order)
    )
    voted = before.conversations[-1].id
    assert {c.id: c.helpful for c in after.conversations}[voted] == 1
    if order == "helpful desc":
        assert after.conversations[0].id == voted


def test_a_kept_page_is_read_again_after_a_vote_on_an_answer(
    store: Store, organisation: Organisation
) -> None:
    conversation = create(store, new(), CALLER, clock_at(0))
    add_answers(store, conversation.id, 1)

    def vote_answer(shown: list[Conversation]) -> None:
        vote(store, CALLER, target="answer", target_id=shown[0].answers[0].id,
             counter="unhelpful", trkref="D10")  # fmt: skip

    _, after = _kept_then_read_again(store, vote_answer, ListRequest("D10", "AIPTPDV5700"))
    assert after.conversations[0].answers[0].unhelpful == 1


def test_a_kept_page_is_read_again_after_an_answer_or_a_create(
    store: Store, organisation: Organisation
) -> None:
    conversation = create(store, new(locale="fr-FR"), CALLER, clock_at(0))
    request = ListRequest("D10", "AIPTPDV5700", locale="fr-FR")
    _, answered = _kept_then_read_again(
        store, lambda _: add_answers(store, conversation.id, 1), request
    )
    assert (answered.answers_count, len(answered.conversations[0].answers)) == (1, 1)
    _, created = _kept_then_read_again(
        store, lambda _: create(store, new(locale="fr-FR"), CALLER, clock_at(1)), request
    )
    assert [c.id for c in created.conversations][1:] == [conversation.id]


def test_a_vote_that_counts_nothing_keeps_the_page(
    store: Store, organisation: Organisation
) -> None:
    conversation = create(store, new(), CALLER, clock_at(0))
    request = ListRequest("D10", "AIPTPDV5700")
    asked = {"target": "conversation", "target_id": conversation.id, "counter": "helpful"}
    vote(store, CALLER, trkref="D10", voter_id="shopper-1", **asked)
    before, _ = page(store, request)
    vote(store, CALLER, trkref="D10", voter_id="shopper-1", **asked)  # the same voter again
    assert page(store, request)[0] is before


def test_a_kept_detail_costs_one_query_and_is_read_again_after_each_write(
    store: Store, organisation: Organisation
) -> None:
    created = create(store, new(), CALLER, clock_at(0))
    add_answers(store, created.id, 1)
    first = get(store, "D10", created.id)
    assert len(statements_of(store, lambda: get(store, "D10", created.id))) == 1  # kept
    assert get(store, "D10", created.id) is first
    vote(store, CALLER, target="conversation", target_id=created.id, counter="helpful",
         trkref="D10")  # fmt: skip
    assert get(store, "D10", created.id).helpful == 1
    vote(store, CALLER, target="answer", target_id=first.answers[0].id, counter="helpful",
         trkref="D10")  # fmt: skip
    assert get(store, "D10", created.id).answers[0].helpful == 1
    add_answers(store, created.id, 1)
    again = get(store, "D10", created.id)
    assert (again.answers_count, len(again.answers)) == (2, 2)
    assert len(statements_of(store, lambda: get(store, "D10", created.id))) == 1


def test_without_a_read_cache_every_read_goes_to_the_database(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = open_store(database, tmp_path, request, read_cache_mib=0)
    try:
        add_organisation_with_key(store)
        create(store, new(), CALLER, clock_at(0))
        page(store, ListRequest("D10", "AIPTPDV5700", order_by="helpful desc"))  # the token key
        reads = [
            statements_of(store, lambda: page(store, ListRequest("D10", "AIPTPDV5700")))
            for _ in range(2)
        ]
        assert [len(statements) for statements in reads] == [3, 3]
        created = create(store, new(), CALLER, clock_at(1))
        details = [statements_of(store, lambda: get(store, "D10", created.id)) for _ in range(2)]
        assert [len(statements) for statements in details] == [2, 2]
        assert len(store.read_cache) == 0
    finally:
        store.close()


def test_walking_while_creating_sees_each_conversation_once_in_order(
    store: Store, organisation: Organisation
) -> None:
    before = [create(store, new(), CALLER, clock_at(n)).id for n in range(30)]
    later = itertools.count(1000)
    for order in ("created_at desc", "created_at asc"):
        seen, token = [], ""
        for _ in range(100):
            found, token = page(
                store,
                ListRequest("D10", "AIPTPDV5700", page_size=4, page_token=token, order_by=order),
            )
            seen += [c.id for c in found.conversations]
            create(store, new(), CALLER, clock_at(next(later)))  # newer than all before
            if not token:
                break
        assert len(seen) == len(set(seen))
        assert set(before) <= set(seen)
        assert seen == sorted(seen, reverse=order.endswith("desc"))


def test_summary_equals_a_full_count_after_concurrent_creates_answers_and_votes(
    store: Store, organisation: Organisation
) -> None:
    skus = ["A", "B", "C"]

    def writing(worker: int) -> None:
        for n in range(20):
            sku, locale = skus[(worker + n) % 3], ["en-GB", "fr-FR"][n % 2]
            created = create(store, new(sku=sku, locale=locale), CALLER)
            for _ in range(n % 3):
                add_answers(store, created.id, 1)
            vote(store, CALLER, target="conversation", target_id=created.id,
                 counter="helpful", trkref="D10")  # fmt: skip

    threads = [threading.Thread(target=writing, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for sku in skus:
        for locale in (None, "en-GB", "fr-FR"):
            found, _ = page(store, ListRequest("D10", sku, locale=locale))
            with store.reading():
                query = ConversationRow.select().where(ConversationRow.sku == sku)
                if locale:
                    query = query.where(ConversationRow.locale == locale)
                answered = (
                    AnswerRow.select()
                    .join(ConversationRow)
                    .where(ConversationRow.id.in_(query.select(ConversationRow.id)))
                )
                assert (found.question_count, found.answers_count) == (
                    query.count(),
                    answered.count(),
                )
    summaries = [page(store, ListRequest("D10", s))[0] for s in skus]
    assert sum(s.question_count for s in summaries) == 160
    assert sum(s.answers_count for s in summaries) == 8 * (7 * 0 + 7 * 1 + 6 * 2)


# Any set, any order, any page size: each conversation exactly once, in order.

_ORDER_KEYS = {
    "created_at desc": lambda c: (-c.created_at.timestamp(), -c.id),
    "created_at asc": lambda c: (c.created_at.timestamp(), c.id),
    "helpful desc": lambda c: (-c.helpful, -c.created_at.timestamp(), -c.id),
}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 3), st.sampled_from(["en-GB", "fr-FR"])),
        max_size=25,
    ),
    size=st.integers(1, 7),
    order=st.sampled_from(sorted(_ORDER_KEYS)),
    locale=st.sampled_from([None, "en-GB", "fr-FR"]),
)
def test_paging_yields_the_filtered_set_once_each_in_order(
    store: Store,
    organisation: Organisation,
    rows: list[tuple[int, int, str]],
    size: int,
    order: str,
    locale: str | None,
) -> None:
    sku = uuid.uuid4().hex  # a product of this example's own
    for second, helpful, row_locale in rows:
        created = create(store, new(sku=sku, locale=row_locale), CALLER, clock_at(second))
        with store.session():
            ConversationRow.update(helpful=helpful).where(
                ConversationRow.id == created.id
            ).execute()
    with store.reading():
        stored = [
            store.get_conversation(row.id)
            for row in ConversationRow.select(ConversationRow.id).where(ConversationRow.sku == sku)
        ]
    expected = sorted(
        (c for c in stored if c is not None and locale in (None, c.locale)), key=_ORDER_KEYS[order]
    )
    pages = walk(store, ListRequest("D10", sku, locale=locale, page_size=size, order_by=order))
    assert [c.id for p in pages for c in p.conversations] == [c.id for c in expected]
    assert {p.question_count for p in pages} == {len(expected)}
