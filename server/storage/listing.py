"""Reading conversations a page at a time: the counts, one index range a page, its answers.

A page costs three queries whatever its depth: the product's counts and revision
from conversation_count, the conversations after the last key of the page before
(keyset pagination, never OFFSET), and the oldest few answers of each. A page the ReadCache holds
under the counts and revision just read costs the first query only.
"""

from __future__ import annotations

import calendar
import datetime
import functools

import peewee

from server.service.domain import ORDERS, Conversation, ConversationPage, PageKey, PageQuery
from server.storage.answer_pages import oldest_answers
from server.storage.conversations import CONVERSATION_COLUMNS, conversation_from_tuple
from server.storage.models import ConversationCountRow, ConversationRow, OrganisationRow, database
from server.storage.prepared import Prepared, parameter, prepare
from server.storage.read_cache import ReadCache


def read_page(query: PageQuery, cache: ReadCache) -> ConversationPage:
    """The page `query` asks for: from `cache` while its product is unchanged."""
    db = database.obj
    values: dict[str, object] = {"trkref": query.trkref, "sku": query.sku, "locale": query.locale}
    # First: a page read after the stamp is at least as new as the stamp says.
    [(question_count, answers_count, revision)] = _counts_statement(
        db, query.locale is not None
    ).run(db, values)
    stamp = (int(question_count), int(answers_count), int(revision))
    kept = cache.get(query, stamp, ConversationPage)
    if kept is not None:
        return kept
    if query.after is not None:
        for column, value in zip(ORDERS[query.order], query.after, strict=True):
            values[f"after_{column}"] = _stored(column, value)
    statement = _page_statement(db, query.order, query.locale is not None, query.after is not None)
    rows = statement.run(db, {**values, "limit": query.size + 1})
    more = len(rows) > query.size
    rows = rows[: query.size]
    answers = oldest_answers([row[0] for row in rows], query.answers)
    conversations = tuple(
        conversation_from_tuple(row, query.trkref, *answers[row[0]]) for row in rows
    )
    next_after = page_key(query.order, conversations[-1]) if more else None
    page = ConversationPage(conversations, stamp[0], stamp[1], next_after)
    cache.put(query, stamp, page)
    return page


def page_key(order: str, conversation: Conversation) -> PageKey:
    """Where a conversation stands in an order."""
    values = {
        "created_at": calendar.timegm(conversation.created_at.utctimetuple()),
        "helpful": conversation.helpful,
        "id": conversation.id,
    }
    return tuple(values[column] for column in ORDERS[order])


def _organisation_id() -> peewee.SelectQuery:
    return OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == parameter("trkref")
    )


@functools.lru_cache(maxsize=64)
def _page_statement(db: peewee.Database, order: str, by_locale: bool, after: bool) -> Prepared:
    """A page's conversations: one range of the order's index, `limit` rows at most."""
    columns = [getattr(ConversationRow, name) for name in ORDERS[order]]
    ascending = order.endswith(" asc")
    where = (ConversationRow.organisation == _organisation_id()) & (
        ConversationRow.sku == parameter("sku")
    )
    if by_locale:
        where &= ConversationRow.locale == parameter("locale")
    if after:
        position = peewee.Tuple(*columns)
        last = peewee.Tuple(*(parameter(f"after_{name}") for name in ORDERS[order]))
        where &= position > last if ascending else position < last
    ordering = [column.asc() if ascending else column.desc() for column in columns]
    return prepare(
        ConversationRow.select(*CONVERSATION_COLUMNS)
        .where(where)
        .order_by(*ordering)
        .limit(parameter("limit"))
    )


def _stored(column: str, value: int) -> object:
    """A key's value as its column holds it."""
    if column == "created_at":
        return datetime.datetime.fromtimestamp(value, datetime.UTC).replace(tzinfo=None)
    return value


@functools.lru_cache(maxsize=4)
def _counts_statement(db: peewee.Database, by_locale: bool) -> Prepared:
    """The conversations, answers and revision of a product (in one locale), from
    conversation_count: a sum of revisions grows whenever one of them does."""
    where = (ConversationCountRow.organisation == _organisation_id()) & (
        ConversationCountRow.sku == parameter("sku")
    )
    if by_locale:
        where &= ConversationCountRow.locale == parameter("locale")
    return prepare(
        ConversationCountRow.select(
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.question_count), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.answers_count), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.revision), 0),
        ).where(where)
    )
