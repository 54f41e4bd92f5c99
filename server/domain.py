"""The plain values the service logic works with and returns."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Organisation:
    """A retailer, identified by its trkref."""

    trkref: str
    name: str
    locale: str


@dataclass(frozen=True)
class Answer:
    """An answer to a conversation's question."""

    id: int
    response: str
    created_at: datetime.datetime
    first_name: str
    town: str
    job_title: str | None
    reviewer_segment: str
    helpful: int
    unhelpful: int
    review_url: str
    review_locale: str
    reviewer_facebook_url: str | None
    response_type: str
    retailer_name: str | None
    retailer_image_url: str | None


@dataclass(frozen=True)
class NewConversation:
    """What a shopper sends to ask a question; `locale` None means the organisation's."""

    trkref: str
    first_name: str
    question: str
    sku: str
    locale: str | None = None


@dataclass(frozen=True)
class Conversation:
    """A stored conversation; `created_at` is timezone-aware UTC with whole seconds."""

    id: int
    trkref: str
    sku: str
    first_name: str
    question: str
    locale: str
    created_at: datetime.datetime
    helpful: int
    unhelpful: int
    embeddable: bool
    retailer_locale: str
    answers: tuple[Answer, ...] = field(default=())


@dataclass(frozen=True)
class ApiKey:
    """A client's API key: its public id and the organisations it may reach."""

    key_id: str
    organisations: frozenset[str]
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None
    # scrypt$N$r$p$salt$hash of the secret; never the secret itself.
    secret_hash: str = field(repr=False)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Caller:
    """Who makes a call: an authenticated API key and the organisations it may reach."""

    key_id: str
    organisations: frozenset[str]
