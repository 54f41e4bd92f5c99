"""Use cases of organisations (retailers): adding and listing them."""

from __future__ import annotations

from server import connections, storage
from server.domain import Organisation
from server.errors import FieldViolation, InvalidOrganisation
from server.validation import check_locale, check_text, check_trkref

NAME_MAX = 200

DEMO = Organisation(trkref="D10", name="Demo retailer", locale="en-GB")


def add_organisation(organisation: Organisation) -> Organisation:
    """Store a new organisation; its trkref must be free."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", organisation.trkref)
    check_text(violations, "name", organisation.name, max_length=NAME_MAX)
    check_locale(violations, "locale", organisation.locale)
    if violations:
        raise InvalidOrganisation(violations)
    with connections.session():
        storage.insert_organisation(organisation)
    return organisation


def list_organisations() -> list[Organisation]:
    with connections.reading():
        return storage.list_organisations()


def ensure_demo_organisation() -> bool:
    """On a database without organisations, add the demo one; True when it did."""
    with connections.session():
        if storage.count_organisations():
            return False
        storage.insert_organisation(DEMO)
        return True
