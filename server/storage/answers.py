"""The statements that store an answer and keep its conversation's counts exact."""

from __future__ import annotations

from typing import Any

import peewee

from server.service.domain import PUBLISHED, PendingAnswer, StoredAnswer
from server.service.errors import Unauthenticated
from server.storage.api_keys import active_keys
from server.storage.conversations import answer_from_row, held_reasons
from server.storage.models import (
    AnswerRow,
    ConversationRow,
    OrganisationRow,
    naive_utc,
)


def insert_answer(db: peewee.Database, pending: PendingAnswer) -> StoredAnswer | None:
    """Store an answer and count it on its conversation and product, in one transaction.

    None when the conversation is not one of the organisation's, or is not published. A key revoked
    before the transaction stores nothing. An answer whose (created_by,
    request_id) is taken stores nothing and gets what is stored under it: the
    unique index decides, so concurrent retries cannot both insert.
    """
    new = pending.new
    with db.atomic():
        query = (
            ConversationRow.select(ConversationRow.id)
            .join(OrganisationRow)
            .where(
                (ConversationRow.id == new.conversation_id)
                & (OrganisationRow.trkref == new.trkref)
                # Shoppers answer what they see: a pending or rejected question is not found.
                & (ConversationRow.status == PUBLISHED)
            )
        )
        conversation = _locked_first(db, query)
        if conversation is None:
            return None
        published = pending.status == PUBLISHED
        if not active_keys({pending.created_by}, db):
            raise Unauthenticated()
        if new.request_id is not None:
            stored = find_requested(db, pending.created_by, new.request_id)
            if stored is not None:
                return stored
        inserted = db.execute(  # type: ignore[no-untyped-call]
            AnswerRow.insert(_row(pending))
            .on_conflict(
                conflict_target=(AnswerRow.created_by, AnswerRow.request_id), action="NOTHING"
            )
            .returning(AnswerRow.id)
        )
        answer_ids = [row[0] for row in inserted]
        if not answer_ids:  # a concurrent retry stored it first
            assert new.request_id is not None
            return find_requested(db, pending.created_by, new.request_id)
        if published:
            _count_answer(db, conversation)
    return StoredAnswer(pending.stored(answer_ids[0]), pending.request_digest)


def _locked_first(db: peewee.Database, query: Any) -> ConversationRow | None:
    """The conversation, locked on PostgreSQL before anything else is written: every writer
    locks the rows it writes before its products' counts (migration 0015), and the answer's
    triggers take its product's. SQLite's one write connection serialises writers already."""
    if isinstance(db, peewee.PostgresqlDatabase):
        query = query.for_update("FOR NO KEY UPDATE", of=ConversationRow)
    found: ConversationRow | None = query.bind(db).get_or_none()
    return found


def _count_answer(db: peewee.Database, conversation: ConversationRow) -> None:
    """One more published answer on the conversation, and on its product's counts when the
    conversation is published."""
    count_answers(db, conversation, 1)


def count_answers(db: peewee.Database, conversation: ConversationRow, added: int) -> None:
    """`added` (+1 or -1) published answers on the conversation (its trigger counts them on
    its product and organisation while it is published, migration 0011)."""
    db.execute(  # type: ignore[no-untyped-call]
        ConversationRow.update(answers_count=ConversationRow.answers_count + added).where(
            ConversationRow.id == conversation.id
        )
    )


def _row(pending: PendingAnswer) -> dict[peewee.Field, object]:
    new = pending.new
    return {
        AnswerRow.conversation: new.conversation_id,
        AnswerRow.response: new.response,
        AnswerRow.created_at: naive_utc(pending.created_at),
        AnswerRow.first_name: new.first_name,
        AnswerRow.town: new.town,
        AnswerRow.job_title: new.job_title,
        AnswerRow.reviewer_segment: new.reviewer_segment,
        AnswerRow.helpful: 0,
        AnswerRow.unhelpful: 0,
        AnswerRow.review_url: new.review_url,
        AnswerRow.review_locale: new.review_locale,
        AnswerRow.reviewer_facebook_url: new.reviewer_facebook_url,
        AnswerRow.response_type: new.response_type,
        AnswerRow.retailer_name: new.retailer_name,
        AnswerRow.retailer_image_url: new.retailer_image_url,
        AnswerRow.created_by: pending.created_by,
        AnswerRow.request_id: new.request_id,
        AnswerRow.request_digest: pending.request_digest,
        AnswerRow.status: pending.status,
        AnswerRow.held_for: ",".join(pending.held_for),
    }


def find_requested(db: peewee.Database, created_by: str, request_id: str) -> StoredAnswer | None:
    """The answer this key created with this request_id, and its request digest."""
    row = (
        AnswerRow.select()
        .where((AnswerRow.created_by == created_by) & (AnswerRow.request_id == request_id))
        .bind(db)
        .get_or_none()
    )
    if row is None:
        return None
    answer = answer_from_row(row)._replace(status=row.status, held_for=held_reasons(row.held_for))
    return StoredAnswer(answer, row.request_digest)
