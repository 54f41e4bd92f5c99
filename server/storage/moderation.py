"""Queries of moderation: the decisions that move an item's status (and the counts with
it), the decision log and the queue's depth; a page of the queue is moderation_queue.py's."""

from __future__ import annotations

import datetime
from typing import Any, cast

import peewee

from server.service.decisions import Decision, DecisionPage, RecordedDecision
from server.service.domain import PENDING, PUBLISHED, PageKey
from server.storage.answers import count_answers
from server.storage.conversations import (
    held_reasons,
)
from server.storage.models import (
    AnswerRow,
    ConversationRow,
    ModerationDecisionRow,
    OrganisationRow,
    naive_utc,
    utc,
)
from server.storage.prepared import stored_time


def _locked(db: peewee.Database, query: Any, of: type[peewee.Model]) -> Any:
    """The query's first row, locked until the transaction ends on PostgreSQL: decisions on
    one item take turns. SQLite's one write connection serialises them already."""
    if isinstance(db, peewee.PostgresqlDatabase):
        query = query.for_update(of=of)
    return query.bind(db).first()


def item_conversation(db: peewee.Database, conversation_id: int) -> ConversationRow:
    query = ConversationRow.select(
        ConversationRow.id,
        ConversationRow.organisation,
        ConversationRow.sku,
        ConversationRow.locale,
        ConversationRow.status,
    ).where(ConversationRow.id == conversation_id)
    return cast(ConversationRow, _locked(db, query, ConversationRow))


def decide(db: peewee.Database, decision: Decision) -> RecordedDecision | None:
    """Move an item to the decision's status and log it, in one transaction; the counts
    follow (migration 0011's triggers, count_answers). None when the item is not one of
    the organisation's. A decision that changes nothing is not logged (id 0)."""
    with db.atomic():
        item = locked_item(db, decision.trkref, decision.target, decision.target_id)
        if item is None:
            return None
        from_status = str(item.status)
        if from_status == decision.to_status:
            return RecordedDecision(0, decision, from_status)
        table = AnswerRow if decision.target == "answer" else ConversationRow
        # An answer's conversation is locked before the answer's counts move on it.
        conversation = (
            None if table is ConversationRow else item_conversation(db, item.conversation_id)
        )
        db.execute(  # type: ignore[no-untyped-call]
            table.update(status=decision.to_status).where(table.id == decision.target_id)
        )
        crossed = (from_status == PUBLISHED) != (decision.to_status == PUBLISHED)
        if conversation is not None and crossed:
            count_answers(db, conversation, 1 if decision.to_status == PUBLISHED else -1)
        return RecordedDecision(log_decision(db, decision, from_status), decision, from_status)


def locked_item(db: peewee.Database, trkref: str, target: str, target_id: int) -> Any:
    """The conversation or answer `target_id`, if it is one of the organisation's, locked
    (_locked): its id, status, held_for, its organisation's report_threshold, and for an
    answer its conversation's id and status (`conversation_status`)."""
    owned = OrganisationRow.trkref == trkref
    threshold = OrganisationRow.report_threshold
    if target == "conversation":
        query = ConversationRow.select(
            ConversationRow.id, ConversationRow.status, ConversationRow.held_for, threshold
        )
        found = query.join(OrganisationRow).where((ConversationRow.id == target_id) & owned)
        return _locked(db, found.objects(), ConversationRow)
    answers = AnswerRow.select(
        AnswerRow.id,
        AnswerRow.status,
        AnswerRow.held_for,
        AnswerRow.conversation,
        ConversationRow.status.alias("conversation_status"),
        threshold,
    )
    answer = (
        answers.join(ConversationRow)
        .join(OrganisationRow)
        .where((AnswerRow.id == target_id) & owned)
    )
    return _locked(db, answer.objects(), AnswerRow)


def hold(db: peewee.Database, target: str, item: Any, reason: str) -> None:
    """Send a published item back to PENDING, held (also) for `reason`; the counts follow
    as a decision's do."""
    held = held_reasons(str(item.held_for))
    held_for = ",".join(held if reason in held else (*held, reason))
    table = AnswerRow if target == "answer" else ConversationRow
    conversation = None if table is ConversationRow else item_conversation(db, item.conversation_id)
    db.execute(  # type: ignore[no-untyped-call]
        table.update(status=PENDING, held_for=held_for).where(table.id == item.id)
    )
    if conversation is not None:
        count_answers(db, conversation, -1)


def log_decision(db: peewee.Database, decision: Decision, from_status: str) -> int:
    organisation_id = OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == decision.trkref
    )
    cursor = db.execute(  # type: ignore[no-untyped-call]
        ModerationDecisionRow.insert(
            organisation=organisation_id,
            target=decision.target,
            target_id=decision.target_id,
            decided_by=decision.decided_by,
            decided_at=naive_utc(decision.decided_at),
            from_status=from_status,
            to_status=decision.to_status,
            reason=decision.reason,
            note=decision.note,
        ).returning(ModerationDecisionRow.id)
    )
    return int(next(iter(cursor))[0])


def decision_page(trkref: str, after: PageKey | None, size: int) -> DecisionPage:
    """`size` decisions of the organisation before `after`, newest first."""
    where = OrganisationRow.trkref == trkref
    if after is not None:
        where &= ModerationDecisionRow.id < after[0]
    rows = list(
        ModerationDecisionRow.select(ModerationDecisionRow)
        .join(OrganisationRow)
        .where(where)
        .order_by(ModerationDecisionRow.id.desc())
        .limit(size + 1)
    )
    decisions = tuple(_recorded(row, trkref) for row in rows[:size])
    more = len(rows) > size
    return DecisionPage(decisions, (decisions[-1].id,) if more else None)


def _recorded(row: ModerationDecisionRow, trkref: str) -> RecordedDecision:
    decision = Decision(
        trkref=trkref,
        target=row.target,
        target_id=row.target_id,
        to_status=row.to_status,
        decided_by=row.decided_by,
        decided_at=utc(row.decided_at),
        reason=row.reason,
        note=row.note,
    )
    return RecordedDecision(row.id, decision, row.from_status)


def queue_depth() -> list[tuple[str, int, datetime.datetime | None]]:
    """Per organisation with pending items: its trkref, how many, and the oldest's time."""
    pending = peewee.SQL(f"'{PENDING}'")
    found: dict[str, tuple[int, datetime.datetime | None]] = {}
    conversations = (
        ConversationRow.select(
            OrganisationRow.trkref,
            peewee.fn.COUNT(ConversationRow.id),
            peewee.fn.MIN(ConversationRow.created_at),
        )
        .join(OrganisationRow)
        .where(ConversationRow.status == pending)
        .group_by(OrganisationRow.trkref)
        .tuples()
    )
    answers = (
        AnswerRow.select(
            OrganisationRow.trkref,
            peewee.fn.COUNT(AnswerRow.id),
            peewee.fn.MIN(AnswerRow.created_at),
        )
        .join(ConversationRow)
        .join(OrganisationRow)
        .where(AnswerRow.status == pending)
        .group_by(OrganisationRow.trkref)
        .tuples()
    )
    for trkref, count, oldest in [*conversations, *answers]:
        moment = None if oldest is None else stored_time(oldest)
        total, before = found.get(trkref, (0, None))
        earliest = moment if before is None else min(before, moment or before)
        found[trkref] = (total + int(count), earliest)
    return [(trkref, count, oldest) for trkref, (count, oldest) in sorted(found.items())]
