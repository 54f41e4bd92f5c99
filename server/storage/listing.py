"""Reading conversations a page at a time: one index range a page, its answers, the counts.

A page costs three queries whatever its depth: the conversations after the
last key of the page before (keyset pagination, never OFFSET), their answers,
and the product's counts from conversation_count.
"""

from __future__ import annotations

import calendar
import datetime
from collections import defaultdict

import peewee

from server.service.domain import ORDERS, Answer, Conversation, ConversationPage, PageKey, PageQuery
from server.storage.conversations import answer_from_row, conversation_from_row
from server.storage.models import AnswerRow, ConversationCountRow, ConversationRow, OrganisationRow


def read_page(query: PageQuery) -> ConversationPage:
    rows = list(_page_rows(query))
    more = len(rows) > query.size
    rows = rows[: query.size]
    answers = answers_of([row.id for row in rows])
    conversations = tuple(
        conversation_from_row(row, query.trkref, answers.get(row.id, ())) for row in rows
    )
    question_count, answers_count = _counts(query)
    next_after = page_key(query.order, conversations[-1]) if more else None
    return ConversationPage(conversations, question_count, answers_count, next_after)


def page_key(order: str, conversation: Conversation) -> PageKey:
    """Where a conversation stands in an order."""
    values = {
        "created_at": calendar.timegm(conversation.created_at.utctimetuple()),
        "helpful": conversation.helpful,
        "id": conversation.id,
    }
    return tuple(values[column] for column in ORDERS[order])


def answers_of(conversation_ids: list[int]) -> dict[int, tuple[Answer, ...]]:
    """The answers of these conversations, oldest first, in one query."""
    if not conversation_ids:
        return {}
    found: defaultdict[int, list[Answer]] = defaultdict(list)
    rows = (
        AnswerRow.select()
        .where(AnswerRow.conversation.in_(conversation_ids))
        .order_by(AnswerRow.conversation, AnswerRow.created_at, AnswerRow.id)
    )
    for row in rows:
        # The foreign key's value, not the conversation (which peewee would query for).
        found[row.conversation_id].append(answer_from_row(row))  # type: ignore[attr-defined]
    return {conversation_id: tuple(answers) for conversation_id, answers in found.items()}


def _organisation_id(trkref: str) -> peewee.SelectQuery:
    return OrganisationRow.select(OrganisationRow.id).where(OrganisationRow.trkref == trkref)


def _page_rows(query: PageQuery) -> peewee.ModelSelect[ConversationRow]:
    columns = [getattr(ConversationRow, name) for name in ORDERS[query.order]]
    ascending = query.order.endswith(" asc")
    where = (ConversationRow.organisation == _organisation_id(query.trkref)) & (
        ConversationRow.sku == query.sku
    )
    if query.locale is not None:
        where &= ConversationRow.locale == query.locale
    if query.after is not None:
        after = [
            _stored(name, value)
            for name, value in zip(ORDERS[query.order], query.after, strict=True)
        ]
        position = peewee.Tuple(*columns)
        where &= position > peewee.Tuple(*after) if ascending else position < peewee.Tuple(*after)
    order = [column.asc() if ascending else column.desc() for column in columns]
    return ConversationRow.select().where(where).order_by(*order).limit(query.size + 1)


def _stored(column: str, value: int) -> object:
    """A key's value as its column holds it."""
    if column == "created_at":
        return datetime.datetime.fromtimestamp(value, datetime.UTC).replace(tzinfo=None)
    return value


def _counts(query: PageQuery) -> tuple[int, int]:
    where = (ConversationCountRow.organisation == _organisation_id(query.trkref)) & (
        ConversationCountRow.sku == query.sku
    )
    if query.locale is not None:
        where &= ConversationCountRow.locale == query.locale
    sums = ConversationCountRow.select(
        peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.question_count), 0),
        peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.answers_count), 0),
    ).where(where)
    counts: tuple[int, int] = sums.tuples().get()  # type: ignore[assignment]  # two sums
    return int(counts[0]), int(counts[1])
