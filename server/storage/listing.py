"""Reading conversations a page at a time: the counts, one index range a page, its answers.

A page costs three queries whatever its depth: the counts of the set it pages through,
the conversations after the last key of the page before (keyset pagination, never
OFFSET), and the oldest few answers of each. A product's counts and revision come from
conversation_count; a page of one product the ReadCache holds under the counts and
revision just read costs that query only. A search or a filter is counted over the rows
it matches. An organisation-wide page is never kept: no one product's revision changes
with every write it would show.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import peewee

from server.service.domain import (
    ORDERS,
    PUBLISHED,
    SHOPPER,
    Conversation,
    ConversationPage,
    PageKey,
    PageQuery,
)
from server.service.filters import NO_FILTER
from server.storage.answer_pages import oldest_answers
from server.storage.conversations import (
    CONVERSATION_COLUMNS,
    conversation_from_tuple,
    held_reasons,
)
from server.storage.models import (
    AnswerRow,
    ConversationCountRow,
    ConversationRow,
    OrganisationCountRow,
    OrganisationRow,
    database,
    naive_utc,
)
from server.storage.prepared import Prepared, parameter, prepare, stored_time
from server.storage.read_cache import ReadCache
from server.storage.search import matches, search_value

# Where each column of an order's key is in a page's rows: relevance ends a search's rows.
_KEY_COLUMNS = {"id": 0, "created_at": 5, "helpful": 6, "answers_count": 10, "relevance": -1}
# A moderator's rows hold each conversation's status and held_for after its columns.
_HELD_COLUMNS = (ConversationRow.status, ConversationRow.held_for)


class _Shape(NamedTuple):
    """What a page's SQL depends on; its values are the statement's parameters."""

    order: str
    by_sku: bool
    by_locale: bool
    after: bool
    search: bool
    answered: bool | None
    has_retailer_answer: bool | None
    created_from: bool
    created_before: bool
    status: str  # the status listed: "published" unless a moderator's filter says
    moderated: bool  # a moderator's view: status and held_for read, answers of every status


def read_page(query: PageQuery, cache: ReadCache) -> ConversationPage:
    """The page `query` asks for: a product's from `cache` while the product is unchanged."""
    db = database.obj
    shape = _shape(query)
    values = _values(db, query)
    stamp = counts = None
    if query.sku is not None:
        # First: a page read after the stamp is at least as new as the stamp says.
        [counts] = _counts_statement(db, True, shape.by_locale).run(db, values)
        stamp = (int(counts[0]), int(counts[1]), int(counts[2]))
        kept = cache.list_pages.get(query, stamp)
        if kept is not None:
            return kept
    # The kept counts hold all, the answered and the unanswered conversations; any other
    # search or filter is counted over the rows it matches.
    if query.search or dataclasses.replace(query.filter, answered=None) != NO_FILTER:
        [summary] = _matching_statement(db, shape._replace(after=False)).run(db, values)
    else:
        if counts is None:
            [counts] = _counts_statement(db, False, shape.by_locale).run(db, values)
        summary = _answered_summary(query.filter.answered, counts)
    rows = _page_statement(db, shape).run(db, {**values, "limit": query.size + 1})
    more = len(rows) > query.size
    rows = rows[: query.size]
    answers = oldest_answers([row[0] for row in rows], query.answers, query.role)
    if shape.moderated:
        conversations = tuple(
            conversation_from_tuple(
                row[:11], query.trkref, *answers[row[0]], row[11], held_reasons(row[12])
            )
            for row in rows
        )
    else:
        conversations = tuple(
            conversation_from_tuple(row[:11], query.trkref, *answers[row[0]]) for row in rows
        )
    next_after = _row_key(query.order, rows[-1]) if more else None
    page = ConversationPage(conversations, int(summary[0]), int(summary[1]), next_after)
    if stamp is not None:
        cache.list_pages.put(query, stamp, page)
    return page


def _answered_summary(answered: bool | None, counts: Sequence[Any]) -> tuple[int, int]:
    """The summary of all, the answered or the unanswered conversations, from the counts
    kept: conversations, answers, revision, answered conversations."""
    questions, answers, _, answered_count = (int(count) for count in counts)
    if answered is None:
        return questions, answers
    return (answered_count, answers) if answered else (questions - answered_count, 0)


def page_key(order: str, conversation: Conversation, relevance: float = 0.0) -> PageKey:
    """Where a conversation stands in an order."""
    values = {
        "created_at": calendar.timegm(conversation.created_at.utctimetuple()),
        "helpful": conversation.helpful,
        "answers_count": conversation.answers_count,
        "id": conversation.id,
        "relevance": relevance,
    }
    return tuple(values[column] for column in ORDERS[order])


def _row_key(order: str, row: Sequence[Any]) -> PageKey:
    """Where a page's row stands in an order."""

    def value(column: str) -> int | float:
        found = row[_KEY_COLUMNS[column]]
        if column == "created_at":
            moment = found if isinstance(found, datetime.datetime) else stored_time(found)
            return calendar.timegm(moment.utctimetuple())
        return float(found) if column == "relevance" else int(found)

    return tuple(value(column) for column in ORDERS[order])


def _shape(query: PageQuery) -> _Shape:
    chosen = query.filter
    return _Shape(
        query.order,
        query.sku is not None,
        query.locale is not None,
        query.after is not None,
        bool(query.search),
        chosen.answered,
        chosen.has_retailer_answer,
        chosen.created_from is not None,
        chosen.created_before is not None,
        chosen.status or PUBLISHED,
        query.role != SHOPPER,
    )


def _values(db: peewee.Database, query: PageQuery) -> dict[str, object]:
    """The parameters of a page's statements."""
    values: dict[str, object] = {"trkref": query.trkref, "sku": query.sku, "locale": query.locale}
    if query.search:
        values["search"] = search_value(db, query.search)
    if query.filter.created_from is not None:
        values["created_from"] = naive_utc(query.filter.created_from)
    if query.filter.created_before is not None:
        values["created_before"] = naive_utc(query.filter.created_before)
    if query.after is not None:
        for column, value in zip(ORDERS[query.order], query.after, strict=True):
            values[f"after_{column}"] = _stored(column, value)
    return values


def _organisation_id() -> peewee.SelectQuery:
    return OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == parameter("trkref")
    )


def _matching(db: peewee.Database, shape: _Shape, *columns: Any) -> tuple[Any, Any]:
    """The conversations a shape matches, with these columns (and `relevance` last when
    searching), unordered; and the column of their relevance when searching."""
    found = matches(db, shape.by_sku) if shape.search else None
    selected = [*columns] if found is None else [*columns, found.c.relevance]
    query = ConversationRow.select(*selected)
    if found is not None:
        query = query.with_cte(found).join(found, on=ConversationRow.id == found.c.id)
    # Shoppers' reads: the published conversations only, which the counts count; a
    # moderator's filter may list another status. A literal: one of the three statuses.
    where = (ConversationRow.organisation == _organisation_id()) & (
        ConversationRow.status == peewee.SQL(f"'{shape.status}'")
    )
    if shape.by_sku:
        where &= ConversationRow.sku == parameter("sku")
    if shape.by_locale:
        where &= ConversationRow.locale == parameter("locale")
    # A literal 0, not a parameter: both planners then see the partial index's condition.
    if shape.answered is not None:
        zero = peewee.SQL("0")
        where &= (
            ConversationRow.answers_count > zero
            if shape.answered
            else (ConversationRow.answers_count == zero)
        )
    if shape.has_retailer_answer is not None:
        retailer = AnswerRow.select(peewee.SQL("1")).where(
            (AnswerRow.conversation == ConversationRow.id)
            & (AnswerRow.response_type == peewee.SQL("'retailer'"))
            & (AnswerRow.status == peewee.SQL("'published'"))
        )
        where &= (
            peewee.fn.EXISTS(retailer)
            if shape.has_retailer_answer
            else (~peewee.fn.EXISTS(retailer))
        )
    if shape.created_from:
        where &= ConversationRow.created_at >= parameter("created_from")
    if shape.created_before:
        where &= ConversationRow.created_at < parameter("created_before")
    if shape.after:
        key = [_key_column(name, found) for name in ORDERS[shape.order]]
        position = peewee.Tuple(*key)
        last = peewee.Tuple(*(parameter(f"after_{name}") for name in ORDERS[shape.order]))
        where &= position > last if shape.order.endswith(" asc") else position < last
    return query.where(where), None if found is None else found.c.relevance


def _key_column(name: str, found: Any) -> Any:
    if name == "relevance":
        assert found is not None
        return found.c.relevance
    return getattr(ConversationRow, name)


@functools.lru_cache(maxsize=256)
def _page_statement(db: peewee.Database, shape: _Shape) -> Prepared:
    """A page's conversations: one range of the order's index, `limit` rows at most."""
    held = _HELD_COLUMNS if shape.moderated else ()
    query, relevance = _matching(db, shape, *CONVERSATION_COLUMNS, *held)
    ascending = shape.order.endswith(" asc")
    columns = [
        relevance if name == "relevance" else getattr(ConversationRow, name)
        for name in ORDERS[shape.order]
    ]
    ordering = [column.asc() if ascending else column.desc() for column in columns]
    return prepare(query.order_by(*ordering).limit(parameter("limit")))


@functools.lru_cache(maxsize=64)
def _matching_statement(db: peewee.Database, shape: _Shape) -> Prepared:
    """How many conversations a search or filter matches, and their answers."""
    counted, _ = _matching(db, shape, ConversationRow.answers_count)
    inner = counted.alias("matching")
    return prepare(
        ConversationRow.select(
            peewee.fn.COUNT(peewee.SQL("*")),
            peewee.fn.COALESCE(peewee.fn.SUM(inner.c.answers_count), 0),
        ).from_(inner)
    )


def _stored(column: str, value: int | float) -> object:
    """A key's value as its column holds it."""
    if column == "created_at":
        return datetime.datetime.fromtimestamp(value, datetime.UTC).replace(tzinfo=None)
    return value


@functools.lru_cache(maxsize=8)
def _counts_statement(db: peewee.Database, by_sku: bool, by_locale: bool) -> Prepared:
    """The conversations, answers, revision and answered conversations of a product or of
    the whole organisation (in one locale), from conversation_count (a sum of revisions
    grows whenever one of them does); of the whole organisation in every locale, from its
    one row in organisation_count."""
    if not by_sku and not by_locale:
        counted = OrganisationCountRow
        return prepare(
            counted.select(
                peewee.fn.COALESCE(peewee.fn.SUM(counted.question_count), 0),
                peewee.fn.COALESCE(peewee.fn.SUM(counted.answers_count), 0),
                peewee.SQL("0"),
                peewee.fn.COALESCE(peewee.fn.SUM(counted.answered_count), 0),
            ).where(counted.organisation == _organisation_id())
        )
    where = ConversationCountRow.organisation == _organisation_id()
    if by_sku:
        where &= ConversationCountRow.sku == parameter("sku")
    if by_locale:
        where &= ConversationCountRow.locale == parameter("locale")
    return prepare(
        ConversationCountRow.select(
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.question_count), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.answers_count), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.revision), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(ConversationCountRow.answered_count), 0),
        ).where(where)
    )
