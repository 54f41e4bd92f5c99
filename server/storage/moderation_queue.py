"""The queue of an organisation's pending conversations and answers, oldest first: a page
is one prepared statement of each kind (prepared.py), built by one function.

Each statement reads the first keys of its kind from the kind's partial index
(`conversation_pending`, `answer_pending`), with the item's columns, its conversation's
and its reports counted by reason; the two are merged in the queue's order
(created_at, kind, id) and only the page's rows are made into items. Two plain statements
cost PostgreSQL less than one that merges them (a UNION ALL under a common table
expression took it longer to plan and run than both together).

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

from server.service.decisions import QueueItem, QueuePage
from server.service.domain import PENDING, PageKey
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
# Each kind's item columns before its conversation's: none for a conversation.
_ITEM_COLUMNS = ((), (*ANSWER_COLUMNS, AnswerRow.held_for))
# Where a row's parts start: its item's id and created_at, then _ITEM_COLUMNS, then its
# conversation's columns, status and held_for, then its reports by reason.
_ITEM = 2
_REPORTS = -len(REPORT_REASONS)


def read_queue_page(trkref: str, after: PageKey | None, size: int) -> QueuePage:
    """`size` pending items of the organisation after `after`, oldest first."""
    db = database.obj
    values: dict[str, object] = {"trkref": trkref, "limit": size + 1}
    if after is not None:
        at = datetime.datetime.fromtimestamp(after[0], datetime.UTC).replace(tzinfo=None)
        values.update(after_created_at=at, after_kind=after[1], after_id=after[2])
    found = [
        (stored_time(row[1]), kind, row[0], row)
        for kind in range(len(_KINDS))
        for row in _page_statement(db, kind, after is not None).run(db, values)
    ]
    found.sort(key=_position)
    items = tuple(_item(kind, row, trkref) for _, kind, _, row in found[:size])
    if len(found) <= size:
        return QueuePage(items, None)
    created_at, kind, item_id, _ = found[size - 1]
    return QueuePage(items, (calendar.timegm(created_at.utctimetuple()), kind, item_id))


def _position(found: tuple[datetime.datetime, int, int, Any]) -> tuple[datetime.datetime, int, int]:
    """Where a row stands in the queue: (created_at, kind, id)."""
    return found[:3]


def _item(kind: int, row: Sequence[Any], trkref: str) -> QueueItem:
    """A page's row of a kind as its queue item."""
    end = _ITEM + len(_ITEM_COLUMNS[kind])
    status, held_for = row[_REPORTS - 2 : _REPORTS]
    conversation = conversation_from_tuple(
        row[end : _REPORTS - 2], trkref, (), None, status, held_reasons(held_for)
    )
    counts = row[_REPORTS:]
    reports = tuple(_counted(counts)) if any(counts) else ()
    if kind == 0:
        return QueueItem("conversation", conversation, None, reports)
    answer = answer_from_tuple(row[_ITEM : end - 1], PENDING, held_reasons(row[end - 1]))
    return QueueItem("answer", conversation, answer, reports)


def _counted(counts: Sequence[int]) -> Iterator[tuple[str, int]]:
    """An item's reports by reason: (reason, how many), for the reasons it has."""
    return ((reason, count) for reason, count in zip(_REASONS, counts, strict=True) if count)


@functools.lru_cache(maxsize=8)
def _page_statement(db: peewee.Database, kind: int, after: bool) -> Prepared:
    """The first `limit` pending items of a kind (after the key after_created_at,
    after_kind, after_id when `after`), from its partial index: each a row of its id and
    created_at, its _ITEM_COLUMNS, its conversation's columns, status and held_for, then
    its reports by reason."""
    target, table = _KINDS[kind]
    reports = [
        ReportRow.select(peewee.fn.COUNT(peewee.SQL("*"))).where(
            (ReportRow.target == peewee.SQL(f"'{target}'"))
            & (ReportRow.target_id == table.id)
            & (ReportRow.reason == peewee.SQL(f"'{reason}'"))
        )
        for reason in _REASONS
    ]
    query = table.select(
        table.id,
        table.created_at,
        *_ITEM_COLUMNS[kind],
        *CONVERSATION_COLUMNS,
        ConversationRow.status,
        ConversationRow.held_for,
        *reports,
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
    ordered = query.where(where).order_by(table.created_at, table.id)
    return prepare(ordered.limit(parameter("limit")))
