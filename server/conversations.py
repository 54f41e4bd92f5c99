"""Use cases of conversations: plain functions over plain values, raising domain errors."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace

from server import storage
from server.domain import Caller, Conversation, NewConversation
from server.errors import (
    FieldViolation,
    InvalidConversation,
    OrganisationNotFound,
    RequestIdReused,
)
from server.validation import check_locale, check_request_id, check_text, check_trkref

FIRST_NAME_MAX = 100
QUESTION_MAX = 5000
SKU_MAX = 100

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def validate_new_conversation(new: NewConversation) -> list[FieldViolation]:
    """Every problem with a new conversation at once; empty when it is valid."""
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", new.trkref)
    check_text(violations, "first_name", new.first_name, max_length=FIRST_NAME_MAX)
    check_text(violations, "question", new.question, max_length=QUESTION_MAX, multiline=True)
    check_text(violations, "sku", new.sku, max_length=SKU_MAX)
    if new.locale:
        check_locale(violations, "locale", new.locale)
    if new.request_id is not None:
        check_request_id(violations, "request_id", new.request_id)
    return violations


def request_digest(new: NewConversation) -> str:
    """What makes two creates the same request: everything the client sent."""
    fields = [new.trkref, new.first_name, new.question, new.sku, new.locale or None]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


async def create_conversation(
    new: NewConversation, caller: Caller, clock: Clock = utc_now
) -> Conversation:
    """Store a shopper's question about a product of an organisation; returns it as stored.

    An organisation the caller may not reach is reported exactly as one that
    does not exist.
    """
    violations = validate_new_conversation(new)
    if violations:
        raise InvalidConversation(violations)
    if new.trkref not in caller.organisations:
        raise OrganisationNotFound(new.trkref)
    # Whole seconds: the v4 API shows `created_at` as 2014-10-07T14:17:56Z.
    created_at = clock().astimezone(datetime.UTC).replace(microsecond=0)
    if new.request_id is not None:
        new = replace(new, request_id=str(uuid.UUID(new.request_id)))
    digest = request_digest(new) if new.request_id else None
    organisation = await storage.known_organisation(new.trkref)
    if organisation is None:
        raise OrganisationNotFound(new.trkref)
    stored = await storage.insert_conversation(
        storage.PendingCreate(new, organisation, created_at, caller.key_id, digest)
    )
    # A retry gets the conversation its first attempt created; another request, an error.
    if stored.request_digest != digest:
        assert new.request_id is not None
        raise RequestIdReused(new.request_id)
    return stored.conversation
