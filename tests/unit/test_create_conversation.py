"""The create_conversation use case over the in-memory FakeStorage."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from harness.support import CALLER, create
from harness.support import NEW_CONVERSATION as NEW
from server.service.conversations import request_digest
from server.service.domain import Caller
from server.service.errors import (
    InvalidConversation,
    OrganisationNotFound,
    RequestIdReused,
    StorageUnavailable,
)
from tests.unit.fakes import FakeStorage

REQUEST_ID = "3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21"
EASTERN = datetime.timezone(datetime.timedelta(hours=-5))


def test_a_create_is_stored_for_the_caller_s_key_at_the_clock_s_whole_second_in_utc(
    store: FakeStorage,
) -> None:
    asked = datetime.datetime(2020, 1, 1, 9, 30, 15, 999999, tzinfo=EASTERN)
    created = create(store, NEW, CALLER, clock=lambda: asked)

    assert created.created_at == datetime.datetime(2020, 1, 1, 14, 30, 15, tzinfo=datetime.UTC)
    assert (created.trkref, created.locale, created.retailer_locale) == ("D10", "en-GB", "en-GB")
    assert (created.first_name, created.question, created.sku) == ("Ann", "Fits?", "S1")
    assert store.get_conversation(created.id) == created
    [stored] = store.conversations.values()
    assert stored.request_digest is None  # no request_id: nothing to tell a retry by


def test_an_invalid_create_touches_no_storage(store: FakeStorage) -> None:
    calls = store.calls.copy()
    with pytest.raises(InvalidConversation) as raised:
        create(store, replace(NEW, first_name=" ", sku="", request_id="nope"), CALLER)
    assert [v.field for v in raised.value.violations] == ["first_name", "sku", "request_id"]
    assert store.calls == calls


def test_an_organisation_out_of_reach_is_not_found_without_asking_storage(
    store: FakeStorage,
) -> None:
    calls = store.calls.copy()
    with pytest.raises(OrganisationNotFound) as raised:
        create(store, NEW, Caller("k", frozenset({"E20"})))
    assert raised.value.trkref == "D10"
    assert store.calls == calls


def test_an_organisation_in_reach_but_not_stored_is_not_found(store: FakeStorage) -> None:
    with pytest.raises(OrganisationNotFound) as raised:
        create(store, replace(NEW, trkref="E20"), Caller(CALLER.key_id, frozenset({"E20"})))
    assert raised.value.trkref == "E20"
    assert store.count_conversations() == 0


def test_a_request_id_is_stored_in_its_canonical_form_with_the_request_s_digest(
    store: FakeStorage,
) -> None:
    created = create(store, replace(NEW, request_id=REQUEST_ID.upper()), CALLER)
    [stored] = store.conversations.values()
    assert stored.conversation == created
    assert stored.request_digest == request_digest(replace(NEW, request_id=REQUEST_ID))
    assert create(store, replace(NEW, request_id=REQUEST_ID), CALLER) == created


def test_the_digest_is_of_what_the_client_sent_not_of_its_request_id() -> None:
    asked = replace(NEW, request_id=REQUEST_ID)
    assert request_digest(asked) == request_digest(replace(asked, request_id=None))
    assert request_digest(asked) != request_digest(replace(asked, question="Another?"))
    # An omitted locale and an empty one are the same request.
    assert request_digest(replace(asked, locale="")) == request_digest(asked)


def test_a_request_id_reused_for_another_request_is_refused(store: FakeStorage) -> None:
    create(store, replace(NEW, request_id=REQUEST_ID), CALLER)
    with pytest.raises(RequestIdReused) as raised:
        create(store, replace(NEW, question="Another?", request_id=REQUEST_ID), CALLER)
    assert raised.value.request_id == REQUEST_ID
    assert store.count_conversations() == 1


def test_a_storage_that_is_down_fails_the_create_as_unavailable(store: FakeStorage) -> None:
    store.unavailable = True
    with pytest.raises(StorageUnavailable):
        create(store, NEW, CALLER)
