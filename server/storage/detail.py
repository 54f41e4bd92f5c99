"""Reading one conversation (Detail) and the pages of its answers (ListAnswers), as a role
sees them: a shopper, a published conversation and its published answers; a moderator, a
conversation and answers of every status, each with why it is held.

Each read first takes the conversation's row with its product's stamp (ReadCache), in one
query; a value kept under that stamp, for that role, is served without reading the answers
again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import peewee

from server.service.domain import SHOPPER, Answer, AnswerPage, AnswerQuery, Conversation, PageKey
from server.storage.answer_pages import answer_pages, oldest_answers
from server.storage.conversations import (
    CONVERSATION_COLUMNS,
    conversation_from_tuple,
    held_reasons,
)
from server.storage.models import ConversationCountRow, ConversationRow, OrganisationRow, database
from server.storage.prepared import Prepared, parameter, prepare
from server.storage.read_cache import ReadCache, Stamp


@functools.lru_cache(maxsize=8)
def _conversation_statement(db: peewee.Database, scoped: bool, moderated: bool) -> Prepared:
    """A conversation, its organisation's trkref and its product's stamp (ReadCache);
    `scoped`: only when its organisation is the one named by the `trkref` parameter;
    `moderated`: of any status, with its status and held_for after its columns (else a
    published one)."""
    counts = ConversationCountRow
    product = (
        (counts.organisation == ConversationRow.organisation)
        & (counts.sku == ConversationRow.sku)
        & (counts.locale == ConversationRow.locale)
    )
    found = ConversationRow.id == parameter("id")
    if not moderated:
        found &= ConversationRow.status == peewee.SQL("'published'")
    if scoped:
        found &= OrganisationRow.trkref == parameter("trkref")
    held = (ConversationRow.status, ConversationRow.held_for) if moderated else ()
    return prepare(
        ConversationRow.select(
            counts.question_count,
            counts.answers_count,
            counts.revision,
            OrganisationRow.trkref,
            *CONVERSATION_COLUMNS,
            *held,
        )
        .join(OrganisationRow)
        .switch(ConversationRow)
        .join(counts, peewee.JOIN.LEFT_OUTER, on=product)
        .where(found)
    )


def get_conversation(
    conversation_id: int,
    answers: int,
    cache: ReadCache,
    trkref: str | None = None,
    role: str = SHOPPER,
) -> Conversation | None:
    """The conversation with its `answers` oldest answers, as `role` sees them; None when
    there is none (for a shopper, none published), or when `trkref` is given and names
    another organisation: then another organisation's conversation costs what a missing one
    does, one statement finding no row. From `cache` while its product is unchanged."""
    found = _conversation_and_stamp(conversation_id, trkref, role)
    if found is None:
        return None
    stamp, trkref, columns = found
    key = (conversation_id, answers, role)
    kept = None if stamp is None else cache.conversations.get(key, stamp)
    if kept is not None:
        return kept
    page, after = oldest_answers([conversation_id], answers, role)[conversation_id]
    conversation = _conversation(columns, trkref, role, page, after)
    if stamp is not None:
        cache.conversations.put(key, stamp, conversation)
    return conversation


def read_answer_page(query: AnswerQuery, cache: ReadCache) -> AnswerPage | None:
    """A page of a conversation's answers, as `query.role` sees them; None when the
    conversation is not one of `query.trkref`'s (for a shopper, not published). From
    `cache` while its product is unchanged."""
    found = _conversation_and_stamp(query.conversation_id, query.trkref, query.role)
    if found is None:
        return None
    stamp, trkref, columns = found
    kept = None if stamp is None else cache.answer_pages.get(query, stamp)
    if kept is not None:
        return kept
    starts = [(query.conversation_id, query.after)]
    pages = answer_pages(starts, query.size, query.role, query.status)
    answers, after = pages[query.conversation_id]
    page = AnswerPage(answers, _conversation(columns, trkref, query.role).answers_count, after)
    if stamp is not None:
        cache.answer_pages.put(query, stamp, page)
    return page


def _conversation(
    columns: Sequence[Any],
    trkref: str,
    role: str,
    answers: tuple[Answer, ...] = (),
    after: PageKey | None = None,
) -> Conversation:
    """The conversation of the columns _conversation_statement reads, with these answers."""
    if role == SHOPPER:
        return conversation_from_tuple(columns, trkref, answers, after)
    *own, status, held_for = columns
    return conversation_from_tuple(own, trkref, answers, after, status, held_reasons(held_for))


def _conversation_and_stamp(
    conversation_id: int, trkref: str | None, role: str
) -> tuple[Stamp | None, str, Sequence[Any]] | None:
    """A conversation's product stamp, its organisation's trkref and the columns of
    _conversation_statement; None when there is no such conversation (of `trkref`, when
    given; published, for a shopper)."""
    db = database.obj
    statement = _conversation_statement(db, trkref is not None, role != SHOPPER)
    rows = statement.run(db, {"id": conversation_id, "trkref": trkref})
    if not rows:
        return None
    question_count, answers_count, revision, trkref, *columns = rows[0]
    # Without its product's row (never, as the service writes), nothing to check it by.
    stamp = None if revision is None else (question_count, answers_count, revision)
    return stamp, trkref, columns
