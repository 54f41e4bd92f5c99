"""The unit tests' FakeStorage keeps the Storage port's promises as the Store does.

Each check runs on the fake, and on the Store over SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from dataclasses import replace

import pytest

from harness.support import CALLER, ORGANISATION, add_organisation_with_key, insert, store_key
from harness.support import NEW_CONVERSATION as NEW
from server.service.domain import (
    ANSWERS_START,
    ORDERS,
    SEARCH_ORDER,
    AnswerPage,
    AnswerQuery,
    ApiKey,
    Conversation,
    NewAnswer,
    NewConversation,
    Organisation,
    PageQuery,
    PendingAnswer,
    PendingCreate,
    StoredCreate,
    Vote,
)
from server.service.errors import (
    OrganisationExists,
    OrganisationNotFound,
    StorageFailed,
    Unauthenticated,
)
from server.service.ports import Storage
from server.storage.answer_pages import answer_key

AT = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
REQUEST_ID = "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"


def key(key_id: str, *trkrefs: str, created_at: datetime.datetime = AT) -> ApiKey:
    return ApiKey(
        key_id, frozenset(trkrefs), created_at, None, secret_hash="scrypt$1$1$1$AA==$AA=="
    )


def pending(
    new: NewConversation = NEW, by: str = CALLER.key_id, at: datetime.datetime = AT
) -> PendingCreate:
    return PendingCreate(new, ORGANISATION, at.replace(microsecond=0), by, None)


def test_organisations_are_listed_by_trkref_and_each_trkref_is_taken_once(
    storage: Storage,
) -> None:
    storage.organisations.add(Organisation("Z9", "Zed", "fr-FR"))
    storage.organisations.add(Organisation("A1", "Ay", "en-GB"))
    with pytest.raises(OrganisationExists):
        storage.organisations.add(Organisation("A1", "Other", "de-DE"))
    assert storage.organisations.list_all() == [
        Organisation("A1", "Ay", "en-GB"),
        Organisation("Z9", "Zed", "fr-FR"),
    ]


def test_the_first_organisation_is_added_only_to_an_empty_storage(storage: Storage) -> None:
    assert storage.organisations.add_first(ORGANISATION) is True
    assert storage.organisations.add_first(Organisation("E20", "Second", "de-DE")) is False
    assert storage.organisations.list_all() == [ORGANISATION]


def test_a_known_organisation_is_found_and_an_unknown_one_is_none(storage: Storage) -> None:
    storage.organisations.add(ORGANISATION)
    assert asyncio.run(storage.organisations.known("D10")) == ORGANISATION
    assert asyncio.run(storage.organisations.known("NOPE")) is None


def test_keys_are_found_as_stored_and_listed_oldest_first(storage: Storage) -> None:
    storage.organisations.add(ORGANISATION)
    storage.organisations.add(Organisation("E20", "Second", "de-DE"))
    later = key("later", "D10", created_at=AT + datetime.timedelta(seconds=1))
    both = key("both", "D10", "E20")
    storage.api_keys.add(later)
    storage.api_keys.add(both)
    assert storage.api_keys.find("both") == both
    assert storage.api_keys.find("nope") is None
    assert storage.api_keys.list_all() == [both, later]


def test_a_key_for_an_unknown_organisation_is_refused_and_not_stored(storage: Storage) -> None:
    storage.organisations.add(ORGANISATION)
    with pytest.raises(OrganisationNotFound) as raised:
        storage.api_keys.add(key("k", "D10", "NOPE", "ALSO-NOPE"))
    assert raised.value.trkref == "ALSO-NOPE"
    assert storage.api_keys.list_all() == []


def test_a_key_id_is_taken_once(storage: Storage) -> None:
    storage.organisations.add(ORGANISATION)
    storage.api_keys.add(key("k", "D10"))
    with pytest.raises(StorageFailed):
        storage.api_keys.add(key("k", "D10"))


def test_an_active_key_is_revoked_once(storage: Storage) -> None:
    storage.organisations.add(ORGANISATION)
    storage.api_keys.add(key("k", "D10"))
    revoked_at = AT + datetime.timedelta(days=1)
    assert storage.api_keys.revoke("k", revoked_at) is True
    assert storage.api_keys.revoke("k", revoked_at) is False
    assert storage.api_keys.revoke("nope", revoked_at) is False
    assert storage.api_keys.find("k") == replace(key("k", "D10"), revoked_at=revoked_at)


def test_a_create_stores_the_conversation_as_asked(storage: Storage) -> None:
    add_organisation_with_key(storage)
    first, second = insert(storage, pending()), insert(storage, pending())
    assert second.conversation.id > first.conversation.id
    assert first == StoredCreate(
        Conversation(
            id=first.conversation.id,
            trkref="D10",
            sku="S1",
            first_name="Ann",
            question="Fits?",
            locale="en-GB",
            created_at=AT.replace(microsecond=0),
            helpful=0,
            unhelpful=0,
            embeddable=False,
            retailer_locale="en-GB",
        ),
        request_digest=None,
    )


def test_a_create_of_a_revoked_or_unknown_key_is_unauthenticated(storage: Storage) -> None:
    add_organisation_with_key(storage)
    store_key(storage, "revoked", "D10")
    storage.api_keys.revoke("revoked", AT)
    for by in ("revoked", "unknown"):
        with pytest.raises(Unauthenticated):
            insert(storage, pending(by=by))


def test_a_request_id_of_a_key_stores_once_and_returns_the_first(storage: Storage) -> None:
    add_organisation_with_key(storage)
    store_key(storage, "other", "D10")
    asked = replace(NEW, request_id=REQUEST_ID)
    first = insert(storage, replace(pending(asked), request_digest="first"))
    again = insert(storage, replace(pending(replace(asked, question="?")), request_digest="other"))
    theirs = insert(storage, pending(asked, by="other"))
    assert again == first and first.request_digest == "first"
    assert theirs.conversation.id != first.conversation.id


def test_a_create_for_an_organisation_that_is_gone_fails(storage: Storage) -> None:
    add_organisation_with_key(storage)
    gone = Organisation("GONE", "Gone", "fr-FR")
    with pytest.raises(StorageFailed):
        insert(storage, replace(pending(), organisation=gone))


def test_a_stored_conversation_reads_back_and_an_unknown_one_is_none(storage: Storage) -> None:
    add_organisation_with_key(storage)
    created = insert(storage, pending()).conversation
    assert asyncio.run(storage.read_conversation(created.id, 20)) == created
    assert asyncio.run(storage.read_conversation(created.id + 1000, 20)) is None


def test_a_conversation_read_for_another_organisation_is_none(storage: Storage) -> None:
    add_organisation_with_key(storage)
    created = insert(storage, pending()).conversation
    assert asyncio.run(storage.read_conversation(created.id, 20, created.trkref)) == created
    assert asyncio.run(storage.read_conversation(created.id, 20, "E20")) is None


def pages(storage: Storage, order: str, locale: str | None = None) -> list[list[int]]:
    """The ids of each page of D10's S1 conversations, two a page, in this order."""
    found, after = [], None
    for _ in range(10):
        query = PageQuery("D10", "S1", locale, order, size=2, after=after)
        page = asyncio.run(storage.read_page(query))
        assert page.question_count == (2 if locale else 5)
        found.append([c.id for c in page.conversations])
        after = page.next_after
        if after is None:
            return found
    raise AssertionError("more pages than conversations")


@pytest.mark.parametrize("order", sorted(set(ORDERS) - {SEARCH_ORDER}))
def test_pages_of_a_product_follow_the_order_and_count_all_it_has(
    storage: Storage, order: str
) -> None:
    add_organisation_with_key(storage)
    # Five about S1, the second and third asked in the same second, two in de-DE.
    seconds = [0, 1, 1, 2, 3]
    ids = [
        insert(
            storage,
            pending(
                replace(NEW, locale="de-DE" if n in (1, 4) else None),
                at=AT + datetime.timedelta(seconds=second),
            ),
        ).conversation.id
        for n, second in enumerate(seconds)
    ]
    insert(storage, pending(replace(NEW, sku="S2")))  # another product

    oldest_first = [[ids[0], ids[1]], [ids[2], ids[3]], [ids[4]]]
    newest_first = [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert pages(storage, order) == (oldest_first if order.endswith(" asc") else newest_first)
    german = [ids[1], ids[4]] if order.endswith(" asc") else [ids[4], ids[1]]
    assert pages(storage, order, locale="de-DE") == [german]


# Answers and votes


def answer_to(conversation_id: int, by: str = CALLER.key_id, **changes: object) -> PendingAnswer:
    new = NewAnswer("D10", conversation_id, response="Yes.", first_name="Bo", response_type="owner")
    return PendingAnswer(replace(new, **changes), AT.replace(microsecond=0), by)  # type: ignore[arg-type]


def test_an_answer_is_stored_counted_and_read_back_oldest_first(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    later = replace(answer_to(conversation.id), created_at=AT + datetime.timedelta(seconds=5))
    second = asyncio.run(storage.insert_answer(later))
    first = asyncio.run(storage.insert_answer(answer_to(conversation.id, town="Leeds")))
    assert first is not None and second is not None
    assert (first.answer.town, first.answer.helpful, first.answer.response_type) == (
        "Leeds",
        0,
        "owner",
    )
    found = asyncio.run(storage.read_conversation(conversation.id, 20))
    assert found is not None
    assert (found.answers, found.answers_count) == ((first.answer, second.answer), 2)
    page = asyncio.run(storage.read_page(PageQuery("D10", "S1", None, "created_at desc", 5)))
    assert page.answers_count == 2 and page.conversations[0].answers == found.answers


def test_an_answer_to_a_conversation_of_another_organisation_is_none(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    elsewhere = answer_to(conversation.id, trkref="E20")
    assert asyncio.run(storage.insert_answer(elsewhere)) is None
    assert asyncio.run(storage.insert_answer(answer_to(conversation.id + 1000))) is None


def test_an_answer_request_id_stores_once_and_a_revoked_key_stores_none(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    asked = replace(answer_to(conversation.id, request_id=REQUEST_ID), request_digest="first")
    first = asyncio.run(storage.insert_answer(asked))
    again = asyncio.run(storage.insert_answer(replace(asked, request_digest="other")))
    assert first is not None and again == first and again.request_digest == "first"
    store_key(storage, "revoked", "D10")
    storage.api_keys.revoke("revoked", AT)
    with pytest.raises(Unauthenticated):
        asyncio.run(storage.insert_answer(answer_to(conversation.id, by="revoked")))
    found = asyncio.run(storage.read_conversation(conversation.id, 20))
    assert found is not None and found.answers_count == 1


def test_votes_count_once_per_voter_and_only_on_their_organisation(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    stored = asyncio.run(storage.insert_answer(answer_to(conversation.id)))
    assert stored is not None

    def vote(target: str, target_id: int, counter: str, **extra: str) -> bool:
        asked = Vote(target, target_id, counter, extra.pop("trkref", "D10"), CALLER.key_id, **extra)
        return asyncio.run(storage.record_vote(asked))

    assert vote("conversation", conversation.id, "helpful")
    assert vote("conversation", conversation.id, "helpful")
    assert vote("conversation", conversation.id, "unhelpful", voter_id="v1")
    assert vote("conversation", conversation.id, "helpful", voter_id="v1")  # counts nothing
    assert vote("answer", stored.answer.id, "helpful", voter_id="v1")  # another target
    assert not vote("conversation", conversation.id, "helpful", trkref="E20")
    assert not vote("answer", stored.answer.id, "helpful", trkref="E20")
    assert not vote("answer", stored.answer.id + 1000, "helpful")
    found = asyncio.run(storage.read_conversation(conversation.id, 20))
    assert found is not None
    assert (found.helpful, found.unhelpful) == (2, 1)
    assert (found.answers[0].helpful, found.answers[0].unhelpful) == (1, 0)


def test_answers_are_read_a_bounded_page_at_a_time_oldest_first(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    stored = []
    for n in range(5):
        moment = AT.replace(microsecond=0) + datetime.timedelta(seconds=n)
        later = replace(answer_to(conversation.id), created_at=moment)
        answer = asyncio.run(storage.insert_answer(later))
        assert answer is not None
        stored.append(answer.answer)
    found = asyncio.run(storage.read_conversation(conversation.id, 2))
    assert found is not None and (found.answers, found.answers_count) == (tuple(stored[:2]), 5)
    assert found.answers_after == answer_key(stored[1])
    first = AnswerQuery("D10", conversation.id, 2, found.answers_after)
    second = asyncio.run(storage.read_answers(first))
    assert second == AnswerPage(tuple(stored[2:4]), 5, answer_key(stored[3]))
    last = asyncio.run(storage.read_answers(replace(first, after=second.next_after)))
    assert last == AnswerPage((stored[4],), 5, None)
    everything = asyncio.run(storage.read_answers(AnswerQuery("D10", conversation.id, 100)))
    assert everything == AnswerPage(tuple(stored), 5, None)
    query = PageQuery("D10", "S1", None, "created_at desc", 5, answers=0)
    [listed] = asyncio.run(storage.read_page(query)).conversations
    assert (listed.answers, listed.answers_after) == ((), ANSWERS_START)
    assert asyncio.run(storage.read_answers(AnswerQuery("E20", conversation.id, 2))) is None
    assert asyncio.run(storage.read_answers(AnswerQuery("D10", conversation.id + 1000, 2))) is None


def test_a_page_of_answers_read_before_an_answer_or_a_vote_is_not_served_after(
    storage: Storage,
) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    query = AnswerQuery("D10", conversation.id, 10)
    assert asyncio.run(storage.read_answers(query)) == AnswerPage((), 0, None)
    stored = asyncio.run(storage.insert_answer(answer_to(conversation.id)))
    assert stored is not None
    assert asyncio.run(storage.read_answers(query)) == AnswerPage((stored.answer,), 1, None)
    vote = Vote("answer", stored.answer.id, "helpful", "D10", CALLER.key_id)
    assert asyncio.run(storage.record_vote(vote))
    page = asyncio.run(storage.read_answers(query))
    assert page is not None and page.answers[0].helpful == 1


def test_a_stamp_changes_with_each_write_its_product_shows_and_no_other(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = insert(storage, pending()).conversation
    sku, locale = conversation.sku, conversation.locale

    def stamps() -> tuple[object, ...]:
        return (
            asyncio.run(storage.conversation_stamp("D10", conversation.id)),
            asyncio.run(storage.product_stamp("D10", sku, None)),
            asyncio.run(storage.product_stamp("D10", sku, locale)),
        )

    def vote(target: str, target_id: int) -> None:
        assert asyncio.run(
            storage.record_vote(Vote(target, target_id, "helpful", "D10", "test-key"))
        )

    seen = [stamps()]
    assert stamps() == seen[0] and None not in seen[0]
    answered = asyncio.run(storage.insert_answer(answer_to(conversation.id)))
    assert answered is not None
    seen.append(stamps())
    vote("conversation", conversation.id)
    seen.append(stamps())
    vote("answer", answered.answer.id)
    seen.append(stamps())
    insert(storage, pending(replace(NEW, question="Another?")))
    seen.append(stamps())
    for before, after in itertools.pairwise(seen):
        assert all(b != a for b, a in zip(before, after, strict=True)), (before, after)
    insert(storage, pending(replace(NEW, sku="ANOTHER-PRODUCT")))
    assert stamps() == seen[-1]
    assert asyncio.run(storage.conversation_stamp("E20", conversation.id)) is None
    assert asyncio.run(storage.conversation_stamp("D10", conversation.id + 1000)) is None
