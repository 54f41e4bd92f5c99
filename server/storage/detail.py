"""Reading one published conversation (Detail) and the pages of its answers (ListAnswers).

Each read first takes the conversation's row with its product's stamp (ReadCache), in one
query; a value kept under that stamp is served without reading the answers again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import peewee

from server.service.domain import AnswerPage, AnswerQuery, Conversation
from server.storage.answer_pages import answer_pages, oldest_answers
from server.storage.conversations import CONVERSATION_COLUMNS, conversation_from_tuple
from server.storage.models import ConversationCountRow, ConversationRow, OrganisationRow, database
from server.storage.prepared import Prepared, parameter, prepare
from server.storage.read_cache import ReadCache, Stamp


@functools.lru_cache(maxsize=8)
def _conversation_statement(db: peewee.Database, scoped: bool) -> Prepared:
    """A conversation, its organisation's trkref and its product's stamp (ReadCache);
    `scoped`: only when its organisation is the one named by the `trkref` parameter."""
    counts = ConversationCountRow
    product = (
        (counts.organisation == ConversationRow.organisation)
        & (counts.sku == ConversationRow.sku)
        & (counts.locale == ConversationRow.locale)
    )
    found = (ConversationRow.id == parameter("id")) & (
        ConversationRow.status == peewee.SQL("'published'")
    )
    if scoped:
        found &= OrganisationRow.trkref == parameter("trkref")
    return prepare(
        ConversationRow.select(
            counts.question_count,
            counts.answers_count,
            counts.revision,
            OrganisationRow.trkref,
            *CONVERSATION_COLUMNS,
        )
        .join(OrganisationRow)
        .switch(ConversationRow)
        .join(counts, peewee.JOIN.LEFT_OUTER, on=product)
        .where(found)
    )


def get_conversation(
    conversation_id: int, answers: int, cache: ReadCache, trkref: str | None = None
) -> Conversation | None:
    """The conversation with its `answers` oldest answers; None when there is none, or when
    `trkref` is given and names another organisation: then another organisation's
    conversation costs what a missing one does, one statement finding no row. From `cache`
    while its product is unchanged."""
    found = _conversation_and_stamp(conversation_id, trkref)
    if found is None:
        return None
    stamp, trkref, columns = found
    key = (conversation_id, answers)
    kept = None if stamp is None else cache.conversations.get(key, stamp)
    if kept is not None:
        return kept
    page, after = oldest_answers([conversation_id], answers)[conversation_id]
    conversation = conversation_from_tuple(columns, trkref, page, after)
    if stamp is not None:
        cache.conversations.put(key, stamp, conversation)
    return conversation


def read_answer_page(query: AnswerQuery, cache: ReadCache) -> AnswerPage | None:
    """A page of a conversation's answers; None when the conversation is not one of
    `query.trkref`'s. From `cache` while its product is unchanged."""
    found = _conversation_and_stamp(query.conversation_id, query.trkref)
    if found is None:
        return None
    stamp, _, columns = found
    kept = None if stamp is None else cache.answer_pages.get(query, stamp)
    if kept is not None:
        return kept
    starts = [(query.conversation_id, query.after)]
    answers, after = answer_pages(starts, query.size)[query.conversation_id]
    page = AnswerPage(answers, _answers_count(columns), after)
    if stamp is not None:
        cache.answer_pages.put(query, stamp, page)
    return page


def _answers_count(columns: Sequence[Any]) -> int:
    return int(columns[-1])  # answers_count ends CONVERSATION_COLUMNS


def _conversation_and_stamp(
    conversation_id: int, trkref: str | None
) -> tuple[Stamp | None, str, Sequence[Any]] | None:
    """A conversation's product stamp, its organisation's trkref and its
    CONVERSATION_COLUMNS; None when there is no such conversation (of `trkref`, when given)."""
    db = database.obj
    statement = _conversation_statement(db, trkref is not None)
    rows = statement.run(db, {"id": conversation_id, "trkref": trkref})
    if not rows:
        return None
    question_count, answers_count, revision, trkref, *columns = rows[0]
    # Without its product's row (never, as the service writes), nothing to check it by.
    stamp = None if revision is None else (question_count, answers_count, revision)
    return stamp, trkref, columns
