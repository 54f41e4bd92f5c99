"""Organisations on a real database: adding, listing, the demo organisation."""

from __future__ import annotations

import pytest

from server.service import organisations
from server.service.domain import Organisation
from server.service.errors import InvalidOrganisation, OrganisationExists
from server.storage.store import Store


def test_added_organisations_are_listed_by_trkref(store: Store) -> None:
    organisations.add_organisation(store, Organisation("Z9", "Zed", "fr-FR"))
    organisations.add_organisation(store, Organisation("A1", "Ay", "en-GB"))
    assert [o.trkref for o in organisations.list_organisations(store)] == ["A1", "Z9"]


def test_trkref_is_unique(store: Store) -> None:
    organisations.add_organisation(store, Organisation("D10", "Demo", "en-GB"))
    with pytest.raises(OrganisationExists):
        organisations.add_organisation(store, Organisation("D10", "Other", "de-DE"))
    assert organisations.list_organisations(store) == [Organisation("D10", "Demo", "en-GB")]


def test_invalid_organisation_lists_every_bad_field(store: Store) -> None:
    with pytest.raises(InvalidOrganisation) as raised:
        organisations.add_organisation(store, Organisation("bad ref", "", "english"))
    assert [v.field for v in raised.value.violations] == ["trkref", "name", "locale"]
    assert organisations.list_organisations(store) == []


def test_demo_organisation_only_on_an_empty_database(store: Store) -> None:
    demo_key = organisations.seed_demo(store)
    assert demo_key is not None
    assert organisations.seed_demo(store) is None
    assert organisations.list_organisations(store) == [organisations.DEMO]
    assert (demo_key.key_id, demo_key.secret) == ("demo", "demo-secret")
    assert [key.key_id for key in store.api_keys.list_all()] == ["demo"]
