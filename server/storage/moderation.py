"""Queries of moderation: an organisation's blocked terms, the decisions that move an item's
status (and the counts with it), the queue of pending items and the decision log."""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterable
from typing import Any, cast

import peewee

from server.service.domain import (
    PENDING,
    PUBLISHED,
    Answer,
    Decision,
    DecisionPage,
    PageKey,
    QueueItem,
    QueuePage,
    RecordedDecision,
)
from server.storage.answer_pages import ANSWER_COLUMNS
from server.storage.answers import count_answers
from server.storage.conversations import (
    CONVERSATION_COLUMNS,
    conversation_from_tuple,
    held_reasons,
)
from server.storage.models import (
    AnswerRow,
    BlockedTermRow,
    ConversationRow,
    ModerationDecisionRow,
    OrganisationRow,
    naive_utc,
    utc,
)
from server.storage.prepared import stored_time

# Where a queue's item stands: conversations before the answers of the same second.
_CONVERSATION, _ANSWER = 0, 1


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
        .order_by(BlockedTermRow.term)
        .tuples()
    )
    return int(organisation.terms_revision), [term for (term,) in cast(Iterable[Any], terms)]


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


def _seconds(moment: datetime.datetime | str) -> int:
    value = moment if isinstance(moment, datetime.datetime) else stored_time(moment)
    return calendar.timegm(value.utctimetuple())


def _after(key: PageKey | None, kind: int, created_at: peewee.Field, id_: peewee.Field) -> object:
    """Where a kind's rows start in the queue's order (created_at, kind, id), after `key`."""
    if key is None:
        return True
    at = datetime.datetime.fromtimestamp(key[0], datetime.UTC).replace(tzinfo=None)
    if kind < key[1]:
        return created_at > at
    if kind > key[1]:
        return created_at >= at
    return peewee.Tuple(created_at, id_) > peewee.Tuple(at, key[2])


def queue_page(trkref: str, after: PageKey | None, size: int) -> QueuePage:
    """`size` pending items of the organisation after `after`, oldest first: one range of
    each kind's partial index, merged.

    The organisation is named by a scalar subquery, not a join on its trkref: PostgreSQL then
    plans for one organisation and reads the range of the index, where a join had it plan for
    every organisation's pending rows (a scan and a sort)."""
    organisation = OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == trkref
    )
    pending = peewee.SQL(f"'{PENDING}'")
    conversations = (
        ConversationRow.select(*CONVERSATION_COLUMNS, ConversationRow.held_for)
        .where(
            (ConversationRow.organisation == organisation)
            & (ConversationRow.status == pending)
            & _after(after, _CONVERSATION, ConversationRow.created_at, ConversationRow.id)
        )
        .order_by(ConversationRow.created_at, ConversationRow.id)
        .limit(size + 1)
        .tuples()
    )
    answers = (
        AnswerRow.select(
            *ANSWER_COLUMNS,
            AnswerRow.held_for,
            *CONVERSATION_COLUMNS,
            ConversationRow.status,
            ConversationRow.held_for,
        )
        .join(ConversationRow)
        .where(
            (ConversationRow.organisation == organisation)
            & (AnswerRow.status == pending)
            & _after(after, _ANSWER, AnswerRow.created_at, AnswerRow.id)
        )
        .order_by(AnswerRow.created_at, AnswerRow.id)
        .limit(size + 1)
        .tuples()
    )
    items = [_pending_conversation(row, trkref) for row in conversations]
    items += [_pending_answer(row, trkref) for row in answers]
    items.sort(key=_queue_key)
    page = tuple(items[:size])
    more = len(items) > size
    return QueuePage(page, _queue_key(page[-1]) if more else None)


def _queue_key(item: QueueItem) -> PageKey:
    if item.answer is not None:
        return (_seconds(item.answer.created_at), _ANSWER, item.answer.id)
    return (_seconds(item.conversation.created_at), _CONVERSATION, item.conversation.id)


def _pending_conversation(row: Any, trkref: str) -> QueueItem:
    conversation = conversation_from_tuple(row[:-1], trkref, ())
    held = held_reasons(str(row[-1]))
    return QueueItem("conversation", conversation._replace(status=PENDING, held_for=held))


def _pending_answer(row: Any, trkref: str) -> QueueItem:
    answer_end = len(ANSWER_COLUMNS)
    created_at = row[3]
    answer = Answer._make(
        (
            row[1],
            row[2],
            stored_time(created_at),
            *row[4:answer_end],
            PENDING,
            held_reasons(str(row[answer_end])),
        )
    )
    columns = row[answer_end + 1 : -2]
    conversation = conversation_from_tuple(columns, trkref, ())
    status, held = str(row[-2]), held_reasons(str(row[-1]))
    return QueueItem("answer", conversation._replace(status=status, held_for=held), answer)


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
