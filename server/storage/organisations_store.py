"""The units of work of organisations: the Store's room for them (store.organisations); their
queries are organisations.py's."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from server.storage import organisations

if TYPE_CHECKING:
    from server.service.domain import Organisation
    from server.storage.store import Store


class Organisations:
    def __init__(self, store: Store) -> None:
        self._store = store
        # Organisations already found, by trkref. No code changes or removes an
        # organisation, so one found stays right; a trkref not found is looked up
        # every time, so one added while serving (by the CLI) is found at once.
        self._found: dict[str, Organisation] = {}

    def add(self, organisation: Organisation) -> None:
        """Store a new organisation; OrganisationExists when its trkref is taken."""
        with self._store.session():
            organisations.insert_organisation(organisation)

    def add_first(self, organisation: Organisation) -> bool:
        """Store the organisation when there is none yet; True when it did."""
        with self._store.session():
            if organisations.count_organisations():
                return False
            organisations.insert_organisation(organisation)
            return True

    def list_all(self) -> list[Organisation]:
        with self._store.reading():
            return organisations.list_organisations()

    async def known(self, trkref: str) -> Organisation | None:
        """The organisation of a trkref, remembered once found; the database is read in a
        thread."""
        organisation = self._found.get(trkref)
        if organisation is None:
            organisation = await asyncio.to_thread(self._look_up, trkref)
        return organisation

    def _look_up(self, trkref: str) -> Organisation | None:
        with self._store.reading():
            organisation = organisations.find_organisation(trkref)
        if organisation is not None:
            self._found[trkref] = organisation
        return organisation
