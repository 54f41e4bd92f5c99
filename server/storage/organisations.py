"""Queries of organisations (retailers), run inside a unit of work the Store opens."""

from __future__ import annotations

import peewee

from server.service.domain import Organisation
from server.service.errors import OrganisationExists
from server.storage.models import OrganisationRow, database


def find_organisation(trkref: str) -> Organisation | None:
    row = OrganisationRow.get_or_none(OrganisationRow.trkref == trkref)
    return None if row is None else _organisation(row)


def list_organisations() -> list[Organisation]:
    return [_organisation(row) for row in OrganisationRow.select().order_by(OrganisationRow.trkref)]


def insert_organisation(organisation: Organisation) -> None:
    try:
        with database.atomic():
            OrganisationRow.create(
                trkref=organisation.trkref,
                name=organisation.name,
                locale=organisation.locale,
                moderation=organisation.moderation,
                report_threshold=organisation.report_threshold,
            )
    except peewee.IntegrityError as error:
        raise OrganisationExists(organisation.trkref) from error


def count_organisations() -> int:
    return int(OrganisationRow.select().count())


def _organisation(row: OrganisationRow) -> Organisation:
    return Organisation(
        trkref=row.trkref,
        name=row.name,
        locale=row.locale,
        moderation=row.moderation,
        report_threshold=row.report_threshold,
    )
