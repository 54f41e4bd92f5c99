"""Each bad field of a create or a vote is named with its reason and the words docs/api.md
shows, exactly; a field at its limit is accepted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.support import CALLER, create, vote
from harness.support import NEW_CONVERSATION as NEW
from server.service.conversations import validate_new_conversation
from server.service.errors import (
    AnswerNotFound,
    ConversationNotFound,
    FieldViolation,
    InvalidRequest,
    Reason,
)
from server.service.validation import check_url
from tests.unit.fakes import FakeStorage

BLANK = "is required and must not be blank"
CONTROL = "must not contain control characters"
NOT_A_TRKREF = "must be 1 to 32 letters, digits, '_', '.' or '-', starting with a letter or digit"
NOT_A_LOCALE = "must be a language tag such as en-GB (at most 35 characters)"
NOT_A_UUID = "must be a UUID such as 3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"
NOT_A_URL = (
    "must be an absolute http or https URL such as https://example.com/, without "
    "user name or password, quotes, angle brackets, backquotes or backslashes"
)


@pytest.mark.parametrize(
    ("field", "value", "reason", "description"),
    [
        ("trkref", "", Reason.REQUIRED, "is required"),
        ("trkref", "D 10", Reason.NOT_A_TRKREF, NOT_A_TRKREF),
        ("trkref", "T" * 33, Reason.NOT_A_TRKREF, NOT_A_TRKREF),
        ("first_name", " ", Reason.REQUIRED, BLANK),
        ("first_name", "A\nB", Reason.CONTROL_CHARACTER, CONTROL),
        ("first_name", "f" * 101, Reason.TOO_LONG, "must be at most 100 characters, got 101"),
        ("question", "", Reason.REQUIRED, BLANK),
        (
            "question",
            "Q\x00",
            Reason.CONTROL_CHARACTER,
            CONTROL + " other than line breaks and tabs",
        ),
        ("question", "q" * 5001, Reason.TOO_LONG, "must be at most 5000 characters, got 5001"),
        ("sku", "\u200b", Reason.REQUIRED, BLANK),
        ("sku", "S\t1", Reason.CONTROL_CHARACTER, CONTROL),
        ("sku", "s" * 101, Reason.TOO_LONG, "must be at most 100 characters, got 101"),
        ("locale", "english", Reason.NOT_A_LANGUAGE_TAG, NOT_A_LOCALE),
        ("locale", "en-" + "a" * 33, Reason.NOT_A_LANGUAGE_TAG, NOT_A_LOCALE),
        ("request_id", "nope", Reason.NOT_A_UUID, NOT_A_UUID),
    ],
)
def test_a_bad_field_of_a_create_is_named_with_its_reason_and_description(
    field: str, value: str, reason: Reason, description: str
) -> None:
    assert validate_new_conversation(replace(NEW, **{field: value})) == [
        FieldViolation(field, reason, description)
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trkref", "T" * 32),
        ("first_name", "f" * 100),
        ("question", "Line one,\r\n\tline two?" + "q" * 4978),
        ("sku", "s" * 100),
        ("locale", "zh-Hant-TW"),
        ("locale", ""),  # the organisation's
        ("request_id", "3F1C2B9E-8A43-4C1E-9D2F-6B7A5E4C3D21"),
    ],
)
def test_a_field_of_a_create_at_its_limit_is_accepted(field: str, value: str) -> None:
    assert validate_new_conversation(replace(NEW, **{field: value})) == []


def test_every_bad_field_of_a_create_is_named_in_order() -> None:
    bad = replace(NEW, trkref="", first_name="", question="", sku="", locale="x", request_id="")
    fields = [v.field for v in validate_new_conversation(bad)]
    assert fields == ["trkref", "first_name", "question", "sku", "locale", "request_id"]


@pytest.mark.parametrize(
    ("asked", "violation"),
    [
        ({"trkref": "D 10"}, FieldViolation("trkref", Reason.NOT_A_TRKREF, NOT_A_TRKREF)),
        ({"target_id": 0}, FieldViolation("id", Reason.OUT_OF_RANGE, "must be at least 1")),
        ({"voter_id": " "}, FieldViolation("voter_id", Reason.REQUIRED, "must not be blank")),
        (
            {"voter_id": "v" * 101},
            FieldViolation("voter_id", Reason.TOO_LONG, "must be at most 100 characters, got 101"),
        ),
    ],
)
def test_a_bad_vote_names_its_field_and_reason(
    store: FakeStorage, asked: dict[str, object], violation: FieldViolation
) -> None:
    request = {"target": "conversation", "target_id": 1, "counter": "helpful", "trkref": "D10"}
    with pytest.raises(InvalidRequest) as raised:
        vote(store, CALLER, **{**request, **asked})
    assert raised.value.violations == [violation]


@pytest.mark.parametrize(
    ("target", "error"), [("conversation", ConversationNotFound), ("answer", AnswerNotFound)]
)
@pytest.mark.parametrize("trkref", ["D10", "E20"])
def test_a_vote_on_nothing_or_out_of_reach_is_not_found_with_its_id(
    store: FakeStorage, target: str, error: type[Exception], trkref: str
) -> None:
    with pytest.raises(error) as raised:
        vote(store, CALLER, target=target, target_id=77, counter="helpful", trkref=trkref)
    found = raised.value
    assert getattr(found, f"{target}_id") == 77


def test_a_vote_without_a_voter_counts_each_time(store: FakeStorage) -> None:
    conversation = create(store, NEW, CALLER)
    for _ in range(3):
        vote(store, CALLER, target="conversation", target_id=conversation.id,
             counter="unhelpful", trkref="D10")  # fmt: skip
    stored = store.get_conversation(conversation.id)
    assert stored is not None and (stored.helpful, stored.unhelpful) == (0, 3)


@pytest.mark.parametrize(
    ("value", "violation"),
    [
        ("ftp://example.com/", FieldViolation("f", Reason.NOT_A_URL, NOT_A_URL)),
        (
            "https://example.com/" + "p" * 2029,
            FieldViolation("f", Reason.TOO_LONG, "must be at most 2048 characters, got 2049"),
        ),
    ],
)
def test_a_bad_url_is_named_with_its_reason_and_description(
    value: str, violation: FieldViolation
) -> None:
    found: list[FieldViolation] = []
    check_url(found, "f", value)
    assert found == [violation]


@pytest.mark.parametrize(
    ("target", "counter"), [("conversation", "funny"), ("question", "helpful")]
)
def test_a_vote_on_an_unknown_target_or_counter_is_a_programming_error(
    store: FakeStorage, target: str, counter: str
) -> None:
    # The transport maps each RPC to one of VOTE_TARGETS and VOTE_COUNTERS.
    with pytest.raises(AssertionError):
        vote(store, CALLER, target=target, target_id=1, counter=counter, trkref="D10")
