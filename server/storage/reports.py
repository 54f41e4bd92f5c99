"""Queries of reports: a report recorded, and the item sent back to the queue by the one
that reaches its organisation's threshold, in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import peewee

from server.service.domain import PUBLISHED
from server.service.reports import REPORTED, ItemReport, ReportOutcome, hold_decision
from server.storage.models import ReportRow, naive_utc
from server.storage.moderation import hold, locked_item, log_decision

if TYPE_CHECKING:
    from collections.abc import Iterable


def record_report(db: peewee.Database, report: ItemReport) -> ReportOutcome | None:
    """Record a report; None when the item is not one of the organisation's (or, for a
    shopper's report, not published). The item stays locked until the transaction ends,
    so reports of one item count in turn: exactly one reaches the threshold."""
    with db.atomic():
        item = locked_item(db, report.trkref, report.target, report.target_id)
        if item is None:
            return None
        status = str(item.status)
        published = status == PUBLISHED and (
            report.target == "conversation" or str(item.conversation_status) == PUBLISHED
        )
        if report.published_only and not published:
            return None
        inserted = db.execute(  # type: ignore[no-untyped-call]
            ReportRow.insert(
                target=report.target,
                target_id=report.target_id,
                reason=report.reason,
                reporter_id=report.reporter_id,
                reported_by=report.reported_by,
                created_at=naive_utc(report.reported_at),
            ).on_conflict_ignore()
        )
        if not _counted(db, inserted):
            return ReportOutcome(counted=False, held=False)
        threshold = int(item.report_threshold)
        reporters, anonymous = _reporters(db, report)
        # Only the report that adds the threshold's reporter holds the item: reports
        # without a reporter_id are one reporter together, added by the first of them.
        added = report.reporter_id is not None or anonymous == 1
        if status != PUBLISHED or not added or reporters != threshold:
            return ReportOutcome(counted=True, held=False)
        hold(db, report.target, item, REPORTED)
        log_decision(db, hold_decision(report, threshold), PUBLISHED)
        return ReportOutcome(counted=True, held=True)


def _counted(db: peewee.Database, cursor: object) -> bool:
    """Whether an insert ... on conflict ignore inserted its row."""
    return bool(db.rows_affected(cursor))  # type: ignore[no-untyped-call]


def _reporters(db: peewee.Database, report: ItemReport) -> tuple[int, int]:
    """The item's distinct reporters, those without a reporter_id counting as one, and
    its reports without one."""
    anonymous = peewee.Case(None, [(ReportRow.reporter_id.is_null(), 1)], 0)
    query = (
        ReportRow.select(
            peewee.fn.COUNT(peewee.fn.COALESCE(ReportRow.reporter_id, "").distinct()),
            peewee.fn.SUM(anonymous),
        )
        .where((ReportRow.target == report.target) & (ReportRow.target_id == report.target_id))
        .tuples()
        .bind(db)
    )
    rows = cast("Iterable[tuple[int, int]]", query)
    reporters, anonymous_reports = next(iter(rows))
    return int(reporters), int(anonymous_reports or 0)
