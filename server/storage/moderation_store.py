"""The Store's moderation: its units of work, and the screening state a process keeps.

It keeps each organisation's compiled blocked terms under the terms revision they were
read at; a create reads the revision (one row by its unique key) and compiles the terms
again only when another process has changed them. ContactDetails is built once, at
start-up (`prepare_screening`), not on the first create.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING

from server.service.decisions import Decision, DecisionPage, QueuePage, RecordedDecision
from server.service.domain import ERASED, PageKey
from server.service.reports import ItemReport, ReportOutcome
from server.service.screening import BlockedTerms, ContactDetails
from server.storage import blocked_terms, erasure, moderation, moderation_queue, reports

if TYPE_CHECKING:
    from server.storage.store import Store


class Moderation:
    """Moderation's part of a Store: `store.moderation`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._terms: dict[str, tuple[int, BlockedTerms]] = {}
        self._contacts: ContactDetails | None = None

    def prepare_screening(self) -> None:
        """Build what screening needs once, before serving."""
        if self._contacts is None:
            self._contacts = ContactDetails()

    @property
    def contacts(self) -> ContactDetails:
        self.prepare_screening()
        assert self._contacts is not None
        return self._contacts

    # Blocked terms

    def add_terms(self, trkref: str, terms: list[str]) -> int | None:
        with self._store.session():
            return blocked_terms.change_terms(trkref, terms, add=True)

    def remove_terms(self, trkref: str, terms: list[str]) -> int | None:
        with self._store.session():
            return blocked_terms.change_terms(trkref, terms, add=False)

    def list_terms(self, trkref: str) -> list[str] | None:
        with self._store.reading():
            found = blocked_terms.read_terms(trkref)
        return None if found is None else found[1]

    async def terms_page(self, trkref: str, after: str | None, size: int) -> tuple[list[str], bool]:
        """`size` of the organisation's terms after `after`, and whether more follow."""
        return await self._store.run_read(blocked_terms.terms_page, (trkref, after, size))

    async def blocked_terms(self, trkref: str) -> BlockedTerms:
        """The organisation's blocked terms, compiled; read again only when they changed."""
        revision = await self._store.run_read(blocked_terms.terms_revision, trkref)
        kept = self._terms.get(trkref)
        if kept is not None and kept[0] == revision:
            return kept[1]
        found = await asyncio.to_thread(self._read_terms, trkref)
        return found

    def _read_terms(self, trkref: str) -> BlockedTerms:
        with self._store.reading():
            found = blocked_terms.read_terms(trkref)
        revision, terms = (0, []) if found is None else found
        compiled = BlockedTerms.compile(terms)
        self._terms[trkref] = (revision, compiled)
        return compiled

    # Decisions, the queue and the log

    async def decide(self, decision: Decision) -> RecordedDecision | None:
        """Apply and log a decision on the write connection, in a thread."""
        return await asyncio.to_thread(self._decide, decision)

    def _decide(self, decision: Decision) -> RecordedDecision | None:
        with self._store.writing() as db:
            if decision.to_status == ERASED:
                return erasure.erase(db, decision)
            return moderation.decide(db, decision)

    async def report(self, report: ItemReport) -> ReportOutcome | None:
        """Record a report on the write connection, in a thread."""
        return await asyncio.to_thread(self._report, report)

    def _report(self, report: ItemReport) -> ReportOutcome | None:
        with self._store.writing() as db:
            return reports.record_report(db, report)

    async def queue_page(self, trkref: str, after: PageKey | None, size: int) -> QueuePage:
        return await self._store.run_read(_queue_page, (trkref, after, size))

    async def decision_page(self, trkref: str, after: PageKey | None, size: int) -> DecisionPage:
        return await self._store.run_read(_decision_page, (trkref, after, size))

    def queue_depth(self) -> list[tuple[str, int, datetime.datetime | None]]:
        """Per organisation: pending items and the oldest's time (for the metrics)."""
        with self._store.reading():
            return moderation.queue_depth()


def _queue_page(asked: tuple[str, PageKey | None, int]) -> QueuePage:
    return moderation_queue.read_queue_page(*asked)


def _decision_page(asked: tuple[str, PageKey | None, int]) -> DecisionPage:
    return moderation.decision_page(*asked)
