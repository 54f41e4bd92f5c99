"""Organisations: adding, listing, the demo organisation."""

from __future__ import annotations

import pytest

from server import organisations
from server.domain import Organisation
from server.errors import InvalidOrganisation, OrganisationExists


def test_added_organisations_are_listed_by_trkref(database: str) -> None:
    organisations.add_organisation(Organisation("Z9", "Zed", "fr-FR"))
    organisations.add_organisation(Organisation("A1", "Ay", "en-GB"))
    assert [o.trkref for o in organisations.list_organisations()] == ["A1", "Z9"]


def test_trkref_is_unique(database: str) -> None:
    organisations.add_organisation(Organisation("D10", "Demo", "en-GB"))
    with pytest.raises(OrganisationExists):
        organisations.add_organisation(Organisation("D10", "Other", "de-DE"))
    assert organisations.list_organisations() == [Organisation("D10", "Demo", "en-GB")]


def test_invalid_organisation_lists_every_bad_field(database: str) -> None:
    with pytest.raises(InvalidOrganisation) as raised:
        organisations.add_organisation(Organisation("bad ref", "", "english"))
    assert [v.field for v in raised.value.violations] == ["trkref", "name", "locale"]
    assert organisations.list_organisations() == []


def test_demo_organisation_only_on_an_empty_database(database: str) -> None:
    assert organisations.ensure_demo_organisation() is True
    assert organisations.ensure_demo_organisation() is False
    assert organisations.list_organisations() == [organisations.DEMO]
