"""The use cases of organisations and API keys over the in-memory FakeStorage."""

from __future__ import annotations

import datetime

import pytest

from harness.support import CALLER, ORGANISATION
from server.service.api_keys import DEMO_KEY_ID, DEMO_SECRET, create_key, list_keys, revoke_key
from server.service.authentication import Authenticator, digest_secret
from server.service.domain import Organisation
from server.service.errors import (
    ApiKeyNotFound,
    InvalidOrganisation,
    OrganisationExists,
    OrganisationNotFound,
)
from server.service.organisations import DEMO, add_organisation, list_organisations, seed_demo
from tests.unit.fakes import FakeStorage

MOMENT = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_a_valid_organisation_is_stored_and_returned() -> None:
    store = FakeStorage()
    assert add_organisation(store, ORGANISATION) == ORGANISATION
    assert list_organisations(store) == [ORGANISATION]


def test_an_invalid_organisation_names_every_bad_field_and_stores_nothing() -> None:
    store = FakeStorage()
    with pytest.raises(InvalidOrganisation) as raised:
        add_organisation(store, Organisation("bad ref", "x" * 201, "english"))
    assert [v.field for v in raised.value.violations] == ["trkref", "name", "locale"]
    assert store.calls["add_organisation"] == 0


def test_a_taken_trkref_is_refused(store: FakeStorage) -> None:
    with pytest.raises(OrganisationExists):
        add_organisation(store, Organisation("D10", "Other", "de-DE"))


def test_the_demo_is_seeded_with_its_documented_key_only_when_there_is_no_organisation() -> None:
    store = FakeStorage()
    demo_key = seed_demo(store)
    assert demo_key is not None
    assert (demo_key.key_id, demo_key.secret, demo_key.organisations) == (
        DEMO_KEY_ID,
        DEMO_SECRET,
        frozenset({DEMO.trkref}),
    )
    assert Authenticator(store).authenticate(DEMO_KEY_ID, DEMO_SECRET).organisations == {"D10"}
    assert seed_demo(store) is None
    assert list_organisations(store) == [DEMO]


def test_a_new_key_gets_a_random_id_and_secret_and_only_a_hash_is_stored(
    store: FakeStorage,
) -> None:
    first, second = create_key(store, ["D10"]), create_key(store, ["D10"])
    assert first.key_id.startswith("key_") and len(first.secret) >= 40
    assert (first.key_id, first.secret) != (second.key_id, second.secret)
    stored = store.keys[first.key_id]
    assert stored.organisations == frozenset({"D10"}) and not stored.revoked
    assert first.secret not in stored.secret_hash
    assert stored.secret_hash == digest_secret(store.api_keys.digest_key(), first.secret)


def test_a_key_takes_the_id_secret_and_time_it_is_given(store: FakeStorage) -> None:
    issued = create_key(store, ["D10"], key_id="fixed", secret="s" * 20, clock=lambda: MOMENT)
    assert (issued.key_id, issued.secret) == ("fixed", "s" * 20)
    [listed] = [key for key in list_keys(store) if key.key_id == "fixed"]
    assert listed.created_at == MOMENT


def test_a_key_for_an_organisation_that_does_not_exist_is_refused(store: FakeStorage) -> None:
    with pytest.raises(OrganisationNotFound) as raised:
        create_key(store, ["D10", "NOPE"])
    assert raised.value.trkref == "NOPE"
    assert [key.key_id for key in list_keys(store)] == [CALLER.key_id]


def test_revoking_marks_the_key_at_the_clock_s_time_once(store: FakeStorage) -> None:
    issued = create_key(store, ["D10"])
    revoke_key(store, issued.key_id, clock=lambda: MOMENT)
    assert store.keys[issued.key_id].revoked_at == MOMENT
    with pytest.raises(ApiKeyNotFound):
        revoke_key(store, issued.key_id)
    with pytest.raises(ApiKeyNotFound) as raised:
        revoke_key(store, "unknown")
    assert raised.value.key_id == "unknown"
