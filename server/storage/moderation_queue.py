"""The queue of an organisation's pending conversations and answers, oldest first: one
prepared statement a page (prepared.py).

The statement takes the first keys of each kind from its partial index
(`conversation_pending`, `answer_pending`) by one select for both kinds, merges them in
the queue's order (created_at, kind, id) and keeps the page; then reads those items alone,
each with its conversation and its reports counted by reason.

The organisation is named by a scalar subquery, not a join on its trkref: PostgreSQL then
plans for one organisation and reads the range of the index, where a join had it plan for
every organisation's pending rows (a scan and a sort).
"""

from __future__ import annotations

import calendar
import datetime
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import peewee

from server.service.domain import PENDING, PageKey, QueueItem, QueuePage
from server.service.reports import REPORT_REASONS
from server.storage.answer_pages import ANSWER_COLUMNS, answer_from_tuple
from server.storage.conversations import (
    CONVERSATION_COLUMNS,
    conversation_from_tuple,
    held_reasons,
)
from server.storage.models import AnswerRow, ConversationRow, OrganisationRow, ReportRow, database
from server.storage.prepared import Prepared, parameter, prepare, stored_time

# The kinds of item, in the queue's order within a second: conversations, then answers.
_KINDS = (("conversation", ConversationRow), ("answer", AnswerRow))
# Reports are counted by reason, in this order (the reasons' own, as text sorts them).
_REASONS = tuple(sorted(REPORT_REASONS))
# Where each part of a row starts (_page_statement's columns).
_ANSWER = 3
_CONVERSATION = _ANSWER + len(ANSWER_COLUMNS) + 1
_REPORTS = _CONVERSATION + len(CONVERSATION_COLUMNS) + 2


def read_queue_page(trkref: str, after: PageKey | None, size: int) -> QueuePage:
    """`size` pending items of the organisation after `after`, oldest first."""
    db = database.obj
    values: dict[str, object] = {"trkref": trkref, "limit": size + 1}
    if after is not None:
        at = datetime.datetime.fromtimestamp(after[0], datetime.UTC).replace(tzinfo=None)
        values.update(after_created_at=at, after_kind=after[1], after_id=after[2])
    rows = _page_statement(db, after is not None).run(db, values)
    items = tuple(_item(row, trkref) for row in rows[:size])
    more = len(rows) > size
    return QueuePage(items, _key(rows[size - 1]) if more else None)


def _key(row: Sequence[Any]) -> PageKey:
    """Where a row's item stands in the queue: (created_at, kind, id)."""
    kind, item_id, created_at = row[:_ANSWER]
    return (calendar.timegm(stored_time(created_at).utctimetuple()), kind, item_id)


def _item(row: Sequence[Any], trkref: str) -> QueueItem:
    """A page's row as its queue item."""
    status, held_for = row[_REPORTS - 2 : _REPORTS]
    conversation = conversation_from_tuple(
        row[_CONVERSATION : _REPORTS - 2], trkref, (), None, status, held_reasons(held_for)
    )
    counts = row[_REPORTS:]
    reports = tuple(_counted(counts)) if any(counts) else ()
    if row[0] == 0:
        return QueueItem("conversation", conversation, None, reports)
    held = held_reasons(row[_CONVERSATION - 1])
    answer = answer_from_tuple(row[_ANSWER : _CONVERSATION - 1], PENDING, held)
    return QueueItem("answer", conversation, answer, reports)


def _counted(counts: Sequence[int]) -> Iterator[tuple[str, int]]:
    """An item's reports by reason: (reason, how many), for the reasons it has."""
    return ((reason, count) for reason, count in zip(_REASONS, counts, strict=True) if count)


def _pending(kind: int, after: bool) -> peewee.ModelSelect[Any]:
    """The first `limit` pending items of a kind (after the key after_created_at,
    after_kind, after_id), from its partial index: kind, id, created_at, target and
    conversation_id."""
    target, table = _KINDS[kind]
    conversation_id = ConversationRow.id if table is ConversationRow else AnswerRow.conversation
    query = table.select(
        peewee.SQL(str(kind)).alias("kind"),
        table.id.alias("id"),
        table.created_at.alias("created_at"),
        peewee.SQL(f"'{target}'").alias("target"),
        conversation_id.alias("conversation_id"),
    )
    if table is AnswerRow:
        query = query.join(ConversationRow)
    organisation = OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == parameter("trkref")
    )
    # A literal status, not a parameter: the planners then see the partial index's condition.
    where = (ConversationRow.organisation == organisation) & (
        table.status == peewee.SQL(f"'{PENDING}'")
    )
    if after:
        # The range starts at the key's second; the key's kind and id place it within it.
        at = parameter("after_created_at")
        key = peewee.Tuple(at, parameter("after_kind"), parameter("after_id"))
        where &= (table.created_at >= at) & (
            peewee.Tuple(table.created_at, peewee.SQL(str(kind)), table.id) > key
        )
    return query.where(where).order_by(table.created_at, table.id).limit(parameter("limit"))


@functools.lru_cache(maxsize=4)
def _page_statement(db: peewee.Database, after: bool) -> Prepared:
    """A page of the queue: `limit` items after the key (when `after`), each a row of its
    kind, id and created_at, its answer's columns and held_for (NULL for a conversation),
    its conversation's columns, status and held_for, then its reports by reason."""
    kinds = [
        peewee.Select([_pending(kind, after).alias(target)], [peewee.SQL("*")])
        for kind, (target, _) in enumerate(_KINDS)
    ]
    merged = kinds[0].union_all(kinds[1]).order_by(*map(peewee.SQL, ("created_at", "kind", "id")))
    page = merged.limit(parameter("limit")).cte("page")
    reports = [
        ReportRow.select(peewee.fn.COUNT(peewee.SQL("*"))).where(
            (ReportRow.target == page.c.target)
            & (ReportRow.target_id == page.c.id)
            & (ReportRow.reason == peewee.SQL(f"'{reason}'"))
        )
        for reason in _REASONS
    ]
    answer = (AnswerRow.id == page.c.id) & (page.c.kind == peewee.SQL("1"))
    query = (
        ConversationRow.select(
            page.c.kind,
            page.c.id,
            page.c.created_at,
            *ANSWER_COLUMNS,
            AnswerRow.held_for,
            *CONVERSATION_COLUMNS,
            ConversationRow.status,
            ConversationRow.held_for,
            *reports,
        )
        .from_(page)
        .join(ConversationRow, on=ConversationRow.id == page.c.conversation_id)
        .join(AnswerRow, peewee.JOIN.LEFT_OUTER, on=answer)
        .with_cte(page)
        .order_by(page.c.created_at, page.c.kind, page.c.id)
    )
    return prepare(query)
