"""Creating conversations on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime

import peewee
import pytest

from harness.support import CALLER, create
from server.service import organisations
from server.service.domain import Caller, NewConversation, Organisation
from server.service.errors import (
    ConversationIdsExhausted,
    InvalidConversation,
    OrganisationNotFound,
)
from server.storage.store import Store

SEED = NewConversation(
    trkref="D10",
    first_name="A shopper",
    question="How is this product?",
    locale="en-GB",
    sku="AIPTPDV5700",
)
ASKED_AT = datetime.datetime(2014, 10, 7, 14, 17, 56, 734512, tzinfo=datetime.UTC)


def test_create_returns_what_is_stored(store: Store, organisation: Organisation) -> None:
    created = create(store, SEED, CALLER, clock=lambda: ASKED_AT)

    assert created.id >= 1
    assert created.first_name == "A shopper"
    assert created.question == "How is this product?"
    assert created.created_at == datetime.datetime(2014, 10, 7, 14, 17, 56, tzinfo=datetime.UTC)
    assert (created.helpful, created.unhelpful, created.embeddable) == (0, 0, False)
    assert created.retailer_locale == "en-GB"
    assert created.answers == ()
    assert store.get_conversation(created.id) == created


def test_ids_are_fresh(store: Store, organisation: Organisation) -> None:
    first = create(store, SEED, CALLER)
    second = create(store, SEED, CALLER)
    assert second.id > first.id


def test_created_at_is_utc_whole_seconds(store: Store, organisation: Organisation) -> None:
    eastern = datetime.timezone(datetime.timedelta(hours=-5))
    asked = datetime.datetime(2020, 1, 1, 9, 30, 15, 999999, tzinfo=eastern)
    created = create(store, SEED, CALLER, clock=lambda: asked)
    assert created.created_at == datetime.datetime(2020, 1, 1, 14, 30, 15, tzinfo=datetime.UTC)


def test_omitted_locale_stores_the_organisations(store: Store, organisation: Organisation) -> None:
    created = create(
        store, NewConversation(trkref="D10", first_name="Ann", question="Fits?", sku="S1"), CALLER
    )
    assert store.get_conversation(created.id).locale == "en-GB"  # type: ignore[union-attr]


def test_given_locale_is_stored_and_retailer_locale_stays(
    store: Store, organisation: Organisation
) -> None:
    created = create(
        store,
        NewConversation(trkref="D10", first_name="Jo", question="Wie?", sku="S1", locale="de-DE"),
        CALLER,
    )
    assert created.locale == "de-DE"
    assert created.retailer_locale == "en-GB"


def test_organisation_out_of_the_callers_reach_is_not_found_like_an_unknown_one(
    store: Store, organisation: Organisation
) -> None:
    organisations.add_organisation(store, Organisation("OTHER", "Another retailer", "fr-FR"))
    outsider = Caller(key_id="k", organisations=frozenset({"D10"}))
    with pytest.raises(OrganisationNotFound) as other:
        create(store, NewConversation("OTHER", "Ann", "Q?", "S1"), outsider)
    with pytest.raises(OrganisationNotFound) as unknown:
        create(store, NewConversation("NOPE", "Ann", "Q?", "S1"), outsider)
    assert str(other.value).replace("OTHER", "X") == str(unknown.value).replace("NOPE", "X")
    assert store.count_conversations() == 0


def test_unknown_trkref_is_not_found(store: Store, organisation: Organisation) -> None:
    with pytest.raises(OrganisationNotFound) as raised:
        create(
            store,
            NewConversation("NOPE", "Ann", "Fits?", "S1"),
            Caller("k", frozenset({"D10", "NOPE"})),
        )
    assert "does not exist or you are not authorised" in str(raised.value)
    assert store.count_conversations() == 0


def test_every_bad_field_is_reported_at_once(store: Store, organisation: Organisation) -> None:
    bad = NewConversation(
        trkref="D10", first_name="   ", question="", sku="x" * 101, locale="not a locale"
    )
    with pytest.raises(InvalidConversation) as raised:
        create(store, bad, CALLER)
    assert [v.field for v in raised.value.violations] == ["first_name", "question", "sku", "locale"]
    assert store.count_conversations() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "x" * 101),
        ("question", "x" * 5001),
        ("sku", "x" * 101),
        ("first_name", "\t\n "),
        ("first_name", "Ann\x00"),
        ("sku", "S\n1"),
        ("question", "Why\x07?"),
        ("locale", "en_GB"),
        ("locale", "e"),
        ("trkref", ""),
        ("trkref", "D 10"),
        ("trkref", "D" * 33),
    ],
)
def test_invalid_field_is_rejected_and_nothing_stored(
    store: Store, organisation: Organisation, field: str, value: str
) -> None:
    bad = NewConversation(**{**SEED.__dict__, field: value})
    with pytest.raises(InvalidConversation) as raised:
        create(store, bad, CALLER)
    assert [v.field for v in raised.value.violations] == [field]
    assert store.count_conversations() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "x" * 100),
        ("question", "x" * 5000),
        ("question", "Line one\r\nline two\ttabbed"),
        ("sku", "x" * 100),
        ("first_name", "Zoë 🛒 Ñandú"),
        ("locale", "zh-Hant-TW"),
        ("locale", ""),
    ],
)
def test_values_at_the_bounds_are_stored_as_sent(
    store: Store, organisation: Organisation, field: str, value: str
) -> None:
    created = create(store, NewConversation(**{**SEED.__dict__, field: value}), CALLER)
    stored = store.get_conversation(created.id)
    assert stored is not None
    assert getattr(stored, field) == (value or "en-GB")


def test_no_conversation_is_stored_past_the_last_uint32_id(
    store: Store, organisation: Organisation
) -> None:
    last = create(store, SEED, CALLER)
    postgres = isinstance(store.db, peewee.PostgresqlDatabase)
    params: tuple[int, ...]
    with store.session():
        if postgres:
            # The integer column's sequence stops at 2**31 - 1: the last id it gives.
            sql, params = "ALTER SEQUENCE conversation_id_seq RESTART WITH 2147483647", ()
        else:
            sql, params = "UPDATE conversation SET id = ? WHERE id = ?", (2**32 - 1, last.id)
        store.db.execute_sql(sql, params)  # type: ignore[no-untyped-call]
    if postgres:
        assert create(store, SEED, CALLER).id == 2**31 - 1
    stored = store.count_conversations()

    with pytest.raises(ConversationIdsExhausted) as refused:
        create(store, SEED, CALLER)

    assert store.count_conversations() == stored
    assert "conversation ids are 32-bit unsigned integers" in str(refused.value)
