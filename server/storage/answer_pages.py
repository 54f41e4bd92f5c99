"""Reading answers a page at a time, oldest first: the few a List or a Detail embeds in each
conversation, and ListAnswers' pages. A shopper's are the published answers; a moderator's
are of every status (or of one), each with its status and why it is held.

Every page is one range of the index on (conversation, created_at, id), `limit` rows at
most (the page and one more, which tells whether another page follows): a conversation's
answers, however many, cost a read what one page of them does.
"""

from __future__ import annotations

import calendar
import datetime
import functools
from collections.abc import Sequence
from typing import Any

import peewee

from server.service.domain import ANSWERS_START, PUBLISHED, SHOPPER, STATUSES, Answer, PageKey
from server.storage.conversations import held_reasons
from server.storage.models import AnswerRow, database
from server.storage.prepared import Prepared, parameter, prepare, stored_time

# An answer's columns: its conversation's id, then Answer's fields in order.
ANSWER_COLUMNS = (
    AnswerRow.conversation,
    AnswerRow.id,
    AnswerRow.response,
    AnswerRow.created_at,
    AnswerRow.first_name,
    AnswerRow.town,
    AnswerRow.job_title,
    AnswerRow.reviewer_segment,
    AnswerRow.helpful,
    AnswerRow.unhelpful,
    AnswerRow.review_url,
    AnswerRow.review_locale,
    AnswerRow.reviewer_facebook_url,
    AnswerRow.response_type,
    AnswerRow.retailer_name,
    AnswerRow.retailer_image_url,
)

# The answers of some conversations, each a page, and where the next page of each starts.
AnswerPages = dict[int, tuple[tuple[Answer, ...], PageKey | None]]


def answer_from_tuple(
    row: Sequence[Any], status: str = PUBLISHED, held_for: tuple[str, ...] = ()
) -> Answer:
    """An answer from its ANSWER_COLUMNS."""
    return Answer._make((row[1], row[2], stored_time(row[3]), *row[4:], status, held_for))


def answer_key(answer: Answer) -> PageKey:
    """Where an answer stands among its conversation's: (created_at, id)."""
    return (calendar.timegm(answer.created_at.utctimetuple()), answer.id)


def oldest_answers(
    conversation_ids: list[int], size: int, role: str = SHOPPER, status: str | None = None
) -> AnswerPages:
    """The `size` oldest answers of each of these conversations, in one statement; where
    the next page starts is ANSWERS_START when `size` is 0 and there are answers."""
    starts: list[tuple[int, PageKey | None]] = [(i, None) for i in conversation_ids]
    return answer_pages(starts, size, role, status)


def answer_pages(
    starts: list[tuple[int, PageKey | None]],
    size: int,
    role: str = SHOPPER,
    status: str | None = None,
) -> AnswerPages:
    """A page of `size` answers of each conversation, after its key (from the oldest when
    None), in one statement: as `role` sees them, and for a moderator of `status` only when
    given."""
    if not starts:
        return {}
    db = database.obj
    values: dict[str, object] = {"limit": size + 1}
    for n, (conversation_id, after) in enumerate(starts):
        values[f"id{n}"] = conversation_id
        if after is not None:
            values[f"after_created_at{n}"] = _stored_time(after[0])
            values[f"after_id{n}"] = after[1]
    shown = PUBLISHED if role == SHOPPER else status
    moderated = role != SHOPPER
    statement = _pages_statement(
        db, tuple(after is not None for _, after in starts), shown, moderated
    )
    found: dict[int, list[Answer]] = {conversation_id: [] for conversation_id, _ in starts}
    for row in statement.run(db, values):
        if moderated:  # its status and held_for end the row
            answer = answer_from_tuple(row[:-2], row[-2], held_reasons(row[-1]))
        else:
            answer = answer_from_tuple(row)
        found[row[0]].append(answer)
    pages: AnswerPages = {}
    for conversation_id, answers in found.items():
        # A UNION ALL keeps no order of its own: each page in (created_at, id) order again.
        answers.sort(key=_order)
        more = len(answers) > size
        page = tuple(answers[:size])
        after = (answer_key(page[-1]) if page else ANSWERS_START) if more else None
        pages[conversation_id] = (page, after)
    return pages


def _order(answer: Answer) -> tuple[datetime.datetime, int]:
    return answer.created_at, answer.id


def _stored_time(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=512)
def _pages_statement(
    db: peewee.Database, after: tuple[bool, ...], status: str | None, moderated: bool
) -> Prepared:
    """One page of answers per conversation (parameters idN, after_created_atN, after_idN
    and limit), each a range of the index, as one UNION ALL: of `status` (of every status
    when None); `moderated`, with each answer's status and held_for after its columns."""
    assert status in (None, *STATUSES)
    columns = (
        [*ANSWER_COLUMNS, AnswerRow.status, AnswerRow.held_for] if moderated else ANSWER_COLUMNS
    )
    parts: list[str] = []
    parameters: list[object] = []
    for n, has_after in enumerate(after):
        where = AnswerRow.conversation == parameter(f"id{n}")
        if status is not None:
            # A literal, not a parameter: the planners then see the status is fixed.
            where &= AnswerRow.status == peewee.SQL(f"'{status}'")
        if has_after:
            position = peewee.Tuple(AnswerRow.created_at, AnswerRow.id)
            last = peewee.Tuple(parameter(f"after_created_at{n}"), parameter(f"after_id{n}"))
            where &= position > last
        page = prepare(
            AnswerRow.select(*columns)
            .where(where)
            .order_by(AnswerRow.created_at, AnswerRow.id)
            .limit(parameter("limit"))
        )
        # A subquery each: SQLite takes ORDER BY and LIMIT only at a compound's end.
        parts.append(f"SELECT * FROM ({page.sql}) AS page{n}")
        parameters.extend(page.parameters)
    return Prepared(" UNION ALL ".join(parts), tuple(parameters))
