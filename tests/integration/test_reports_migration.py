"""Migration 0012 both ways with data: reports and thresholds go, and come back at 3."""

from __future__ import annotations

import asyncio
import datetime

from playhouse.migrations import Runner

from harness.support import CALLER, ORGANISATION, add_organisation_with_key, insert
from server.package_data import MIGRATIONS
from server.service.domain import NewConversation, Organisation, PendingCreate
from server.service.reports import ItemReport
from server.storage.models import OrganisationRow, ReportRow
from server.storage.store import Store

MIGRATION = "0012_reports"
LATER = [
    "0013_search_published_answers",
    "0014_folded_blocked_terms",
    "0015_revisions_by_triggers",
]
AT = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def test_reports_migrate_down_and_up(store: Store) -> None:
    add_organisation_with_key(store)
    store.organisations.add(Organisation("R30", "Rival", "en-GB", "post", report_threshold=7))
    new = NewConversation("D10", "Ann", "Fits?", "S1")
    conversation = insert(store, PendingCreate(new, ORGANISATION, AT, CALLER.key_id)).conversation
    asked = ItemReport("conversation", conversation.id, "D10", "spam", CALLER.key_id, AT, "a")
    assert asyncio.run(store.moderation.report(asked)) is not None
    runner = Runner(store.db, str(MIGRATIONS))
    with store.reading():
        assert runner.down(MIGRATION) == [*reversed(LATER), MIGRATION]
        tables = store.db.get_tables()
        columns = [c.name for c in store.db.get_columns("organisation")]
    assert "report" not in tables and "report_threshold" not in columns
    with store.reading():
        assert runner.up() == [MIGRATION, *LATER]
        assert ReportRow.select().count() == 0
        thresholds = {o.trkref: o.report_threshold for o in OrganisationRow.select()}
    assert thresholds == {"D10": 3, "R30": 3}
    assert asyncio.run(store.moderation.report(asked)) is not None
