"""Queries of an organisation's blocked terms: changed (with its terms revision), read whole
for screening, read a page at a time in the order of their code points."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import peewee

from server.storage.models import BlockedTermRow, OrganisationRow, database


def _organisation(trkref: str) -> OrganisationRow | None:
    return OrganisationRow.get_or_none(OrganisationRow.trkref == trkref)


def change_terms(trkref: str, terms: list[str], add: bool) -> int | None:
    """Add (or remove) an organisation's blocked terms; how many changed, None when there
    is no such organisation. Any change adds to its terms_revision, so replicas re-read."""
    organisation = _organisation(trkref)
    if organisation is None:
        return None
    if add:
        rows = [{"organisation": organisation.id, "term": term} for term in terms]
        changed = BlockedTermRow.insert_many(rows).on_conflict_ignore().as_rowcount().execute()
    else:
        changed = (
            BlockedTermRow.delete()
            .where(
                (BlockedTermRow.organisation == organisation.id) & BlockedTermRow.term.in_(terms)
            )
            .execute()
        )
    if changed:
        OrganisationRow.update(terms_revision=OrganisationRow.terms_revision + 1).where(
            OrganisationRow.id == organisation.id
        ).execute()
    return int(changed)


def terms_revision(trkref: str) -> int | None:
    """The revision of an organisation's blocked terms; None when there is no such one."""
    row = (
        OrganisationRow.select(OrganisationRow.terms_revision)
        .where(OrganisationRow.trkref == trkref)
        .tuples()
        .first()
    )
    return None if row is None else int(row[0])


def read_terms(trkref: str) -> tuple[int, list[str]] | None:
    """An organisation's terms revision and its blocked terms (sorted), read together."""
    organisation = _organisation(trkref)
    if organisation is None:
        return None
    terms = (
        BlockedTermRow.select(BlockedTermRow.term)
        .where(BlockedTermRow.organisation == organisation.id)
        .order_by(_by_code_point())
        .tuples()
    )
    return int(organisation.terms_revision), [term for (term,) in cast(Iterable[Any], terms)]


def _by_code_point() -> Any:
    """The term, compared by code point: SQLite's default; PostgreSQL's collation "C"
    (its default collation follows a locale, which would order the pages apart)."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        return BlockedTermRow.term.collate('"C"')
    return BlockedTermRow.term


def terms_page(asked: tuple[str, str | None, int]) -> tuple[list[str], bool]:
    """`size` blocked terms of the organisation after the term `after`, in the order of
    their code points, and whether more follow."""
    trkref, after, size = asked
    term = _by_code_point()
    organisation = OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == trkref
    )
    where = BlockedTermRow.organisation == organisation
    if after is not None:
        where &= term > after
    rows = BlockedTermRow.select(BlockedTermRow.term).where(where).order_by(term).limit(size + 1)
    terms = [found for (found,) in cast(Iterable[Any], rows.tuples())]
    return terms[:size], len(terms) > size
