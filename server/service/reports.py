"""Use case of reports: a shopper reports a conversation or an answer to the organisation's
moderators; enough reporters send a published item back to the queue."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from server.service.decisions import Decision
from server.service.domain import PENDING, Caller
from server.service.errors import FieldViolation, InvalidRequest, Reason
from server.service.ports import Storage
from server.service.validation import check_optional_text, check_trkref, is_blank
from server.service.votes import VOTER_ID_MAX, not_found

REPORT_REASONS = ("spam", "offensive", "off_topic", "personal_information", "other")
# What an item held by its reports is held for (held_for, the decision log's reason).
REPORTED = "reported"


@dataclass(frozen=True)
class ItemReport:
    """One report of a conversation or an answer of `trkref`. With a `reporter_id`, the
    reporter counts once per item; without one, each report counts as one reporter."""

    target: str  # "conversation" or "answer"
    target_id: int
    trkref: str
    reason: str  # one of REPORT_REASONS
    reported_by: str  # the API key that sent it
    reported_at: datetime.datetime
    reporter_id: str | None = None
    # Whether a shopper key sent it: it reaches published items only.
    published_only: bool = True


@dataclass(frozen=True)
class ReportOutcome:
    """What a report did: whether it counted (not a reporter's repeat), and whether it
    sent the item back to the queue (the report that reached the threshold)."""

    counted: bool
    held: bool


def hold_decision(report: ItemReport, threshold: int) -> Decision:
    """What the decision log records when a report sends its item back to the queue: the
    system's decision, without a key."""
    return Decision(
        trkref=report.trkref,
        target=report.target,
        target_id=report.target_id,
        to_status=PENDING,
        decided_by="",
        decided_at=report.reported_at,
        reason=REPORTED,
        note=f"{threshold} reporters",
    )


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def report(
    store: Storage,
    caller: Caller,
    *,
    target: str,
    target_id: int,
    trkref: str,
    reason: str,
    reporter_id: str = "",
    clock: Callable[[], datetime.datetime] = _utc_now,
) -> ReportOutcome:
    """Record a report; NOT_FOUND as a vote's when the item is out of reach (and, for a
    shopper key, when it is not published)."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", trkref)
    if target_id < 1:
        violations.append(FieldViolation("id", Reason.OUT_OF_RANGE, "must be at least 1"))
    if reason not in REPORT_REASONS:
        violations.append(
            FieldViolation(
                "report.reason", Reason.REQUIRED, "must be one of " + ", ".join(REPORT_REASONS)
            )
        )
    check_optional_text(violations, "report.reporter_id", reporter_id, max_length=VOTER_ID_MAX)
    if reporter_id and is_blank(reporter_id):
        violations.append(
            FieldViolation("report.reporter_id", Reason.REQUIRED, "must not be blank")
        )
    if violations:
        raise InvalidRequest(violations)
    if trkref not in caller.organisations:
        raise not_found(target, target_id)
    asked = ItemReport(
        target=target,
        target_id=target_id,
        trkref=trkref,
        reason=reason,
        reported_by=caller.key_id,
        reported_at=clock().replace(microsecond=0),
        reporter_id=reporter_id or None,
        published_only=not caller.moderator,
    )
    outcome = await store.moderation.report(asked)
    if outcome is None:
        raise not_found(target, target_id)
    return outcome
