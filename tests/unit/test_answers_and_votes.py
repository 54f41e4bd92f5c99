"""The create_answer and vote use cases over the in-memory FakeStorage."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from harness.support import CALLER, answer, create, vote
from harness.support import NEW_CONVERSATION as QUESTION
from server.service.answers import validate_new_answer
from server.service.domain import Caller, NewAnswer
from server.service.errors import (
    AnswerNotFound,
    ConversationNotFound,
    InvalidAnswer,
    InvalidRequest,
    RequestIdReused,
)
from tests.unit.fakes import FakeStorage

REQUEST_ID = "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"


@pytest.fixture
def conversation_id(store: FakeStorage) -> int:
    return create(store, QUESTION, CALLER).id


def owner_answer(conversation_id: int, **changes: object) -> NewAnswer:
    new = NewAnswer(trkref="D10", conversation_id=conversation_id, response="Yes.", first_name="Bo")
    return replace(new, **changes)  # type: ignore[arg-type]


def fields(
    raised: pytest.ExceptionInfo[InvalidAnswer] | pytest.ExceptionInfo[InvalidRequest],
) -> list[str]:
    return [v.field for v in raised.value.violations]


def test_an_answer_is_stored_as_sent_owner_by_default_at_the_whole_second(
    store: FakeStorage, conversation_id: int
) -> None:
    at = datetime.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.UTC)
    sent = owner_answer(conversation_id, review_locale="EN-gb", job_title="", town="Leeds")
    created = answer(store, sent, CALLER, clock=lambda: at)
    assert created.created_at == at.replace(microsecond=0)
    assert (created.response_type, created.review_locale, created.job_title) == (
        "owner",
        "en-GB",
        None,
    )
    assert (created.town, created.helpful, created.unhelpful) == ("Leeds", 0, 0)
    found = store.get_conversation(conversation_id)
    assert found is not None and found.answers == (created,) and found.answers_count == 1


def test_every_bad_field_is_listed_at_once_and_nothing_is_stored(
    store: FakeStorage, conversation_id: int
) -> None:
    bad = NewAnswer(
        trkref="",
        conversation_id=0,
        response="\t\n",
        first_name="\x07",
        response_type="Owner",
        town="x" * 101,
        job_title="a\nb",
        reviewer_segment="\x85",
        review_url="https://",
        review_locale="english",
        reviewer_facebook_url="https://exa mple.com/",
        retailer_name="Shop",
        retailer_image_url="data:image/png;base64,AAAA",
        request_id="42",
    )
    with pytest.raises(InvalidAnswer) as raised:
        answer(store, bad, CALLER)
    assert fields(raised) == [
        "trkref",
        "conversation_id",
        "response",
        "first_name",
        "response_type",
        "town",
        "job_title",
        "reviewer_segment",
        "review_url",
        "reviewer_facebook_url",
        "retailer_image_url",
        "review_locale",
        "retailer_name",
        "retailer_image_url",
        "request_id",
    ]
    assert store.calls["insert_answer"] == 0


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "http://example.com:8080/a?b=c#d", "https://xn--bcher-kva.example/"],
)
def test_absolute_http_urls_are_accepted(url: str) -> None:
    assert validate_new_answer(owner_answer(1, review_url=url, reviewer_facebook_url=url)) == []


@pytest.mark.parametrize(
    "url",
    ["/relative", "example.com", "mailto:a@example.com", "https://exa\x00mple.com", "http://[::1"],
)
def test_other_urls_are_refused(url: str) -> None:
    assert [v.field for v in validate_new_answer(owner_answer(1, review_url=url))] == ["review_url"]


def test_retailer_fields_are_for_retailer_answers(store: FakeStorage, conversation_id: int) -> None:
    retailer = owner_answer(
        conversation_id,
        response_type="retailer",
        retailer_name="Demo retailer",
        retailer_image_url="https://example.com/logo.png",
    )
    created = answer(store, retailer, CALLER)
    assert (created.response_type, created.retailer_name) == ("retailer", "Demo retailer")
    assert created.retailer_image_url == "https://example.com/logo.png"


def test_a_conversation_out_of_reach_is_not_found_as_a_missing_one(
    store: FakeStorage, conversation_id: int
) -> None:
    stranger = Caller(key_id=CALLER.key_id, organisations=frozenset({"E20"}))
    errors = []
    for asked, caller in [
        (owner_answer(conversation_id + 1), CALLER),
        (owner_answer(conversation_id, trkref="E20"), CALLER),
        (owner_answer(conversation_id), stranger),
    ]:
        with pytest.raises(ConversationNotFound) as raised:
            answer(store, asked, caller)
        errors.append(str(raised.value))
    assert len(set(errors)) == 1 and str(conversation_id) not in errors[0]


def test_a_request_id_retry_returns_the_first_answer_and_a_reuse_is_refused(
    store: FakeStorage, conversation_id: int
) -> None:
    asked = owner_answer(conversation_id, request_id=REQUEST_ID.upper())
    first = answer(store, asked, CALLER)
    assert answer(store, replace(asked, request_id=REQUEST_ID), CALLER) == first
    with pytest.raises(RequestIdReused):
        answer(store, replace(asked, response="Another answer"), CALLER)
    found = store.get_conversation(conversation_id)
    assert found is not None and found.answers_count == 1


def test_votes_count_and_a_voter_counts_once(store: FakeStorage, conversation_id: int) -> None:
    on = {"target": "conversation", "target_id": conversation_id, "trkref": "D10"}
    vote(store, CALLER, counter="helpful", **on)
    vote(store, CALLER, counter="helpful", voter_id="v1", **on)
    vote(store, CALLER, counter="unhelpful", voter_id="v1", **on)
    found = store.get_conversation(conversation_id)
    assert found is not None and (found.helpful, found.unhelpful) == (2, 0)


@pytest.mark.parametrize("voter_id", ["x" * 101, "a\x00b", "   "])
def test_a_bad_voter_id_is_invalid(store: FakeStorage, conversation_id: int, voter_id: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        vote(store, CALLER, target="conversation", target_id=conversation_id, counter="helpful",
             trkref="D10", voter_id=voter_id)  # fmt: skip
    assert fields(raised) == ["voter_id"]
    assert store.calls["record_vote"] == 0


def test_a_vote_out_of_reach_is_not_found_as_a_missing_one(
    store: FakeStorage, conversation_id: int
) -> None:
    created = answer(store, owner_answer(conversation_id), CALLER)
    stranger = Caller(key_id=CALLER.key_id, organisations=frozenset({"E20"}))
    for target, target_id, error in [
        ("conversation", conversation_id, ConversationNotFound),
        ("answer", created.id, AnswerNotFound),
    ]:
        messages = set()
        for trkref, asked_id, caller in [
            ("D10", target_id + 1, CALLER),
            ("E20", target_id, CALLER),
            ("D10", target_id, stranger),
        ]:
            with pytest.raises(error) as raised:
                vote(store, caller, target=target, target_id=asked_id, counter="helpful",
                     trkref=trkref)  # fmt: skip
            messages.add(str(raised.value))
        assert len(messages) == 1
