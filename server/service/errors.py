"""Domain errors: what the service logic raises, independent of any transport."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a caller may see; the transport maps each subclass to a status."""


class Reason(enum.StrEnum):
    """Why a field is invalid, for programs (AIP-193: google.rpc.BadRequest.FieldViolation's
    `reason`); docs/api.md lists them. The description says the same for people."""

    REQUIRED = "REQUIRED"  # missing, empty, or only whitespace and invisible characters
    TOO_LONG = "TOO_LONG"
    CONTROL_CHARACTER = "CONTROL_CHARACTER"
    BIDI_CONTROL = "BIDI_CONTROL"  # a bidirectional embedding, override or isolate in a name
    NOT_A_LANGUAGE_TAG = "NOT_A_LANGUAGE_TAG"
    NOT_A_TRKREF = "NOT_A_TRKREF"
    NOT_A_UUID = "NOT_A_UUID"
    IDEMPOTENCY_KEY_MISMATCH = "IDEMPOTENCY_KEY_MISMATCH"
    NEGATIVE = "NEGATIVE"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOT_A_PAGE_TOKEN = "NOT_A_PAGE_TOKEN"
    NOT_A_URL = "NOT_A_URL"  # not an absolute http or https URL
    UNKNOWN_RESPONSE_TYPE = "UNKNOWN_RESPONSE_TYPE"
    RETAILER_ONLY = "RETAILER_ONLY"  # a field of retailer answers on an owner's answer
    OUT_OF_RANGE = "OUT_OF_RANGE"  # an id below 1
    INVALID_FILTER = "INVALID_FILTER"  # outside the AIP-160 subset a List accepts
    NOTHING_TO_SEARCH = "NOTHING_TO_SEARCH"  # a search without a letter or digit
    SEARCH_REQUIRED = "SEARCH_REQUIRED"  # order_by relevance without a search
    UNKNOWN_POLICY = "UNKNOWN_POLICY"  # a moderation policy but pre or post
    UNKNOWN_ROLE = "UNKNOWN_ROLE"  # a key's role but shopper or moderator
    NOTHING_TO_MATCH = "NOTHING_TO_MATCH"  # a blocked term without a letter or digit


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, why (for programs), and what is wrong (for people)."""

    field: str
    reason: Reason
    description: str


class InvalidArgument(DomainError):
    """The request is malformed; `violations` lists every bad field at once."""

    def __init__(self, subject: str, violations: list[FieldViolation]) -> None:
        self.violations = violations
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid {subject}: {summary}")


class InvalidConversation(InvalidArgument):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("conversation", violations)


class InvalidAnswer(InvalidArgument):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("answer", violations)


class InvalidRequest(InvalidArgument):
    """A read's parameters are malformed (a List's sku, page size, order or token)."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("request", violations)


class InvalidOrganisation(InvalidArgument):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("organisation", violations)


class OrganisationNotFound(DomainError):
    # The wording matches the v4 API: it never says whether the organisation
    # exists but is out of reach or does not exist at all.
    def __init__(self, trkref: str) -> None:
        self.trkref = trkref
        super().__init__(
            f"organisation {trkref!r} does not exist or you are not authorised to access it"
        )


class ConversationNotFound(DomainError):
    # One message whether the conversation does not exist, belongs to another
    # organisation, or the organisation is out of the key's reach.
    def __init__(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        # Nor the id: the answer to every such request is the same, byte for byte.
        super().__init__("the conversation does not exist or you are not authorised to access it")


class AnswerNotFound(DomainError):
    # As ConversationNotFound: one message, whatever the reason, without the id.
    def __init__(self, answer_id: int) -> None:
        self.answer_id = answer_id
        super().__init__("the answer does not exist or you are not authorised to access it")


class PermissionDenied(DomainError):
    """The caller's key may reach the organisation but not this method: a shopper key on a
    moderator's route. Said before anything is looked up, so it tells nothing of what exists."""

    def __init__(self) -> None:
        super().__init__("this method needs a moderator key")


class BlockedTermExists(DomainError):
    """The organisation blocks the term already (in its folded form)."""

    def __init__(self, term: str) -> None:
        self.term = term
        super().__init__(f"the blocked term {term!r} already exists")


class BlockedTermNotFound(DomainError):
    """The organisation does not block the term (in its folded form)."""

    def __init__(self, term: str) -> None:
        self.term = term
        super().__init__(f"the blocked term {term!r} does not exist")


class OrganisationExists(DomainError):
    def __init__(self, trkref: str) -> None:
        self.trkref = trkref
        super().__init__(f"organisation {trkref!r} already exists")


class Unauthenticated(DomainError):
    """Credentials are missing, malformed, wrong, or of a revoked key."""

    def __init__(self) -> None:
        # One message for every case: it must not tell which part was wrong.
        super().__init__("missing or invalid credentials: use HTTP Basic with an API key")


class RateLimited(DomainError):
    """The key has used up its allowance of calls; retry later."""

    def __init__(self) -> None:
        super().__init__("rate limit exceeded for this API key; retry later")


class TooManyFailedAuthentications(DomainError):
    """The client's address has failed to authenticate too often lately; retry later."""

    def __init__(self) -> None:
        super().__init__("too many failed authentications from this address; retry later")


class ApiKeyNotFound(DomainError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no active API key {key_id!r}")


class RequestIdReused(DomainError):
    """A request_id already used by this key for a different request."""

    def __init__(self, request_id: str, what: str = "question") -> None:
        self.request_id = request_id
        super().__init__(
            f"request_id {request_id!r} was already used for a different request; "
            f"use a new request_id for a new {what}"
        )


class ConversationIdsExhausted(DomainError):
    """No id is left for a new conversation: the contract's ids are uint32."""

    def __init__(self) -> None:
        super().__init__(
            "no more conversations can be stored: conversation ids are 32-bit unsigned integers "
            "(at most 4294967295 on SQLite, 2147483647 on PostgreSQL) and all are taken"
        )


class StorageUnavailable(DomainError):
    """The database cannot be reached or is busy; the call may be retried."""


class StorageFailed(DomainError):
    """The database refused a statement for another reason than being unavailable."""
