"""Use cases of answers: answering a conversation's question."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from dataclasses import astuple, replace

from server.service.conversations import FIRST_NAME_MAX, Clock, utc_now
from server.service.domain import Answer, Caller, NewAnswer, PendingAnswer
from server.service.errors import (
    ConversationNotFound,
    FieldViolation,
    InvalidAnswer,
    Reason,
    RequestIdReused,
)
from server.service.moderation import submission_status
from server.service.ports import Storage
from server.service.validation import (
    canonical_locale,
    check_locale,
    check_optional_text,
    check_request_id,
    check_text,
    check_trkref,
    check_url,
)

RESPONSE_MAX = 5000
SHORT_TEXT_MAX = 100
RETAILER_NAME_MAX = 200
RESPONSE_TYPES = ("owner", "retailer")
# The texts screening reads; URLs are links by their nature, not held for being one.
SCREENED = ("response", "first_name", "town", "job_title", "reviewer_segment", "retailer_name")
# Fields only the retailer's own responses carry.
RETAILER_FIELDS = ("retailer_name", "retailer_image_url")


def validate_new_answer(new: NewAnswer) -> list[FieldViolation]:
    """Every problem with a new answer at once; empty when it is valid."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", new.trkref)
    if new.conversation_id < 1:
        violations.append(
            FieldViolation("conversation_id", Reason.OUT_OF_RANGE, "must be at least 1")
        )
    check_text(violations, "response", new.response, max_length=RESPONSE_MAX, multiline=True)
    check_text(violations, "first_name", new.first_name, max_length=FIRST_NAME_MAX)
    if new.response_type and new.response_type not in RESPONSE_TYPES:
        violations.append(
            FieldViolation(
                "response_type", Reason.UNKNOWN_RESPONSE_TYPE, "must be 'owner' or 'retailer'"
            )
        )
    for name in ("town", "job_title", "reviewer_segment"):
        check_optional_text(violations, name, getattr(new, name), max_length=SHORT_TEXT_MAX)
    check_optional_text(
        violations, "retailer_name", new.retailer_name, max_length=RETAILER_NAME_MAX
    )
    for name in ("review_url", "reviewer_facebook_url", "retailer_image_url"):
        check_url(violations, name, getattr(new, name))
    if new.review_locale:
        check_locale(violations, "review_locale", new.review_locale)
    if new.response_type != "retailer":
        for name in RETAILER_FIELDS:
            if getattr(new, name):
                violations.append(
                    FieldViolation(name, Reason.RETAILER_ONLY, "is only for retailer answers")
                )
    if new.request_id is not None:
        check_request_id(violations, "request_id", new.request_id)
    return violations


def normalised(new: NewAnswer) -> NewAnswer:
    """The answer as stored: the default type, one case of tag and UUID, "" as absent."""
    return replace(
        new,
        response_type=new.response_type or "owner",
        review_locale=canonical_locale(new.review_locale) if new.review_locale else "",
        job_title=new.job_title or None,
        reviewer_facebook_url=new.reviewer_facebook_url or None,
        retailer_name=new.retailer_name or None,
        retailer_image_url=new.retailer_image_url or None,
        request_id=str(uuid.UUID(new.request_id)) if new.request_id else None,
    )


def request_digest(new: NewAnswer) -> str:
    """What makes two answers the same request: everything the client sent but request_id."""
    fields = astuple(replace(new, request_id=None))
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


async def create_answer(
    store: Storage, new: NewAnswer, caller: Caller, clock: Clock = utc_now
) -> Answer:
    """Store an answer to the conversation `new.conversation_id` of `new.trkref`; returns
    it as stored, with its status (see create_conversation).

    A conversation of another organisation, or of one out of the caller's reach,
    is reported exactly as one that does not exist.
    """
    violations = validate_new_answer(new)
    if violations:
        raise InvalidAnswer(violations)
    if new.trkref not in caller.organisations:
        raise ConversationNotFound(new.conversation_id)
    organisation = await store.organisations.known(new.trkref)
    if organisation is None:
        raise ConversationNotFound(new.conversation_id)
    new = normalised(new)
    digest = request_digest(new) if new.request_id else None
    created_at = clock().astimezone(datetime.UTC).replace(microsecond=0)
    texts = {name: getattr(new, name) or "" for name in SCREENED}
    locale = new.review_locale or organisation.locale
    status, held_for = await submission_status(store, organisation, texts, locale)
    stored = await store.insert_answer(
        PendingAnswer(new, created_at, caller.key_id, digest, status, held_for)
    )
    if stored is None:
        raise ConversationNotFound(new.conversation_id)
    if stored.request_digest != digest:
        assert new.request_id is not None
        raise RequestIdReused(new.request_id, "answer")
    return stored.answer
