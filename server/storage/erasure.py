"""A moderator erases a conversation or an answer: its rows are deleted, not hidden (its
answers with a conversation, the votes and reports on each, its search data by the
triggers), the counts moved first as a reject moves them, and the decision logged without
any of the text."""

from __future__ import annotations

from typing import Any

import peewee

from server.service.decisions import Decision, RecordedDecision
from server.service.domain import PUBLISHED, REJECTED
from server.storage.answers import count_answers
from server.storage.models import AnswerRow, ConversationRow, ReportRow, VoteRow
from server.storage.moderation import item_conversation, locked_item, log_decision


def erase(db: peewee.Database, decision: Decision) -> RecordedDecision | None:
    """Delete the item and what hangs on it, in one transaction; None when it is not one
    of the organisation's (an erased one is not). The product's revision moves by the
    triggers of migration 0015."""
    with db.atomic():
        if decision.target == "conversation" and isinstance(db, peewee.PostgresqlDatabase):
            _lock_answers(db, decision.target_id)
        item = locked_item(db, decision.trkref, decision.target, decision.target_id)
        if item is None:
            return None
        from_status = str(item.status)
        if decision.target == "conversation":
            _erase_conversation(db, decision.target_id, from_status)
        else:
            _erase_answer(db, item, from_status)
        return RecordedDecision(log_decision(db, decision, from_status), decision, from_status)


def _lock_answers(db: peewee.Database, conversation_id: int) -> None:
    """Lock a conversation's answers before the conversation (PostgreSQL): every writer
    locks answers before conversations, and both before the counts their triggers write
    (migration 0015). SQLite's one write connection serialises writers already."""
    query = AnswerRow.select(AnswerRow.id).where(AnswerRow.conversation == conversation_id)
    db.execute(query.order_by(AnswerRow.id).for_update())  # type: ignore[no-untyped-call]


def _erase_conversation(db: peewee.Database, conversation_id: int, status: str) -> None:
    if status == PUBLISHED:
        # Out of every count (migration 0011's trigger).
        db.execute(  # type: ignore[no-untyped-call]
            ConversationRow.update(status=REJECTED).where(ConversationRow.id == conversation_id)
        )
    answers = AnswerRow.select(AnswerRow.id).where(AnswerRow.conversation == conversation_id)
    rows: Any = answers.tuples().bind(db)
    answer_ids = [int(row[0]) for row in rows]
    for table in (VoteRow, ReportRow):
        _delete_on(db, table, "answer", answer_ids)
        _delete_on(db, table, "conversation", [conversation_id])
    db.execute(  # type: ignore[no-untyped-call]
        AnswerRow.delete().where(AnswerRow.conversation == conversation_id)
    )
    db.execute(  # type: ignore[no-untyped-call]
        ConversationRow.delete().where(ConversationRow.id == conversation_id)
    )


def _erase_answer(db: peewee.Database, item: Any, status: str) -> None:
    conversation = item_conversation(db, item.conversation_id)
    if status == PUBLISHED:
        count_answers(db, conversation, -1)
    for table in (VoteRow, ReportRow):
        _delete_on(db, table, "answer", [item.id])
    db.execute(AnswerRow.delete().where(AnswerRow.id == item.id))  # type: ignore[no-untyped-call]


def _delete_on(db: peewee.Database, table: Any, target: str, ids: list[int]) -> None:
    if ids:
        db.execute(  # type: ignore[no-untyped-call]
            table.delete().where((table.target == target) & table.target_id.in_(ids))
        )
