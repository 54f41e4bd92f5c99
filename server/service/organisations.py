"""Use cases of organisations (retailers): adding and listing them, and seeding the demo one."""

from __future__ import annotations

from server.service.api_keys import DEMO_KEY_ID, DEMO_SECRET, IssuedKey, create_key
from server.service.domain import POLICIES, Organisation
from server.service.errors import FieldViolation, InvalidOrganisation, Reason
from server.service.ports import Storage
from server.service.validation import check_locale, check_text, check_trkref

NAME_MAX = 200

# Post-moderated, so that the README's examples show at once what they create.
REPORT_THRESHOLD_MAX = 1000
DEMO = Organisation(trkref="D10", name="Demo retailer", locale="en-GB", moderation="post")


def add_organisation(store: Storage, organisation: Organisation) -> Organisation:
    """Store a new organisation; its trkref must be free."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", organisation.trkref)
    check_text(violations, "name", organisation.name, max_length=NAME_MAX)
    check_locale(violations, "locale", organisation.locale)
    if organisation.moderation not in POLICIES:
        violations.append(
            FieldViolation("moderation", Reason.UNKNOWN_POLICY, "must be 'pre' or 'post'")
        )
    if not 1 <= organisation.report_threshold <= REPORT_THRESHOLD_MAX:
        violations.append(
            FieldViolation(
                "report_threshold", Reason.OUT_OF_RANGE, f"must be 1 to {REPORT_THRESHOLD_MAX}"
            )
        )
    if violations:
        raise InvalidOrganisation(violations)
    store.organisations.add(organisation)
    return organisation


def list_organisations(store: Storage) -> list[Organisation]:
    return store.organisations.list_all()


def seed_demo(store: Storage) -> IssuedKey | None:
    """On a database without organisations, add the demo organisation and its documented
    key (demo:demo-secret), so that the README's examples work; the key when it did."""
    if not store.organisations.add_first(DEMO):
        return None
    return create_key(store, [DEMO.trkref], key_id=DEMO_KEY_ID, secret=DEMO_SECRET)
