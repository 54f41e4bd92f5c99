"""The plain values the service logic works with and returns."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import NamedTuple

from server.service.filters import NO_FILTER, Filter


@dataclass(frozen=True)
class Organisation:
    """A retailer, identified by its trkref."""

    trkref: str
    name: str
    locale: str
    # "pre": new content waits for a moderator; "post": published unless screening holds it.
    # The command line adds organisations as "pre" unless told.
    moderation: str = "post"
    # How many reporters send a published item back to the queue.
    report_threshold: int = 3


# An item's moderation status: shoppers see the published ones only.
PUBLISHED, PENDING, REJECTED = "published", "pending", "rejected"
STATUSES = (PENDING, PUBLISHED, REJECTED)
# What the decision log says an erased item became: it is no longer stored.
ERASED = "erased"
# Why an item is held besides what screening finds: its organisation pre-moderates.
PRE_MODERATION = "pre_moderation"
POLICIES = ("pre", "post")
# A key's role: a moderator's reads see every status, a shopper's the published items only.
SHOPPER, MODERATOR = "shopper", "moderator"
ROLES = (SHOPPER, MODERATOR)


class Answer(NamedTuple):
    """An answer to a conversation's question.

    Answer and Conversation are named tuples, not frozen dataclasses: a List page
    makes sixty of them, and a tuple is made much faster (docs/performance.md).
    """

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
    # Reads for shoppers hold published answers only; a create returns what it stored.
    status: str = PUBLISHED
    held_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewAnswer:
    """What an owner of the product or the retailer sends to answer a conversation.

    Optional texts are "" or None when not given; `request_id`, when given, makes
    the create idempotent for the caller's key.
    """

    trkref: str
    conversation_id: int
    response: str
    first_name: str
    response_type: str = ""
    town: str = ""
    job_title: str | None = None
    reviewer_segment: str = ""
    review_url: str = ""
    review_locale: str = ""
    reviewer_facebook_url: str | None = None
    retailer_name: str | None = None
    retailer_image_url: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class PendingAnswer:
    """An answer to write: what was asked, by whom, and when."""

    new: NewAnswer
    created_at: datetime.datetime
    created_by: str
    request_digest: str | None = None
    status: str = PUBLISHED
    held_for: tuple[str, ...] = ()

    def stored(self, answer_id: int) -> Answer:
        """The answer as stored under `answer_id`: what was sent, with nothing voted yet."""
        new = self.new
        return Answer(
            id=answer_id,
            response=new.response,
            created_at=self.created_at.astimezone(datetime.UTC),
            first_name=new.first_name,
            town=new.town,
            job_title=new.job_title,
            reviewer_segment=new.reviewer_segment,
            helpful=0,
            unhelpful=0,
            review_url=new.review_url,
            review_locale=new.review_locale,
            reviewer_facebook_url=new.reviewer_facebook_url,
            response_type=new.response_type,
            retailer_name=new.retailer_name,
            retailer_image_url=new.retailer_image_url,
            status=self.status,
            held_for=self.held_for,
        )


@dataclass(frozen=True)
class StoredAnswer:
    """The answer a create stored, or the one its request_id had stored before, with the
    digest of the request that stored it."""

    answer: Answer
    request_digest: str | None


# What a vote counts on, and which way.
VOTE_TARGETS = ("conversation", "answer")
VOTE_COUNTERS = ("helpful", "unhelpful")


@dataclass(frozen=True)
class Vote:
    """One vote: +1 on a counter of a conversation or an answer of the organisation `trkref`.

    With a `voter_id`, the voter counts once per target, whichever way it voted.
    """

    target: str  # one of VOTE_TARGETS
    target_id: int
    counter: str  # one of VOTE_COUNTERS
    trkref: str
    voted_by: str  # the API key that sent it
    voter_id: str | None = None


@dataclass(frozen=True)
class NewConversation:
    """What a shopper sends to ask a question; `locale` None means the organisation's.

    `request_id`, when given, makes the create idempotent for the caller's key.
    """

    trkref: str
    first_name: str
    question: str
    sku: str
    locale: str | None = None
    request_id: str | None = None


class Conversation(NamedTuple):
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
    answers: tuple[Answer, ...] = ()
    answers_count: int = 0
    # Where the answers after `answers` start (ANSWERS_START when it holds none of them);
    # None when it holds them all.
    answers_after: PageKey | None = None
    # The ListAnswers page_token of those answers, made from answers_after by the service.
    answers_next_page_token: str = ""
    status: str = PUBLISHED
    held_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiKey:
    """A client's API key: its public id and the organisations it may reach."""

    key_id: str
    organisations: frozenset[str]
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None
    # hmac-sha256$HEX (or, issued before digests, scrypt$N$r$p$salt$hash) of the
    # secret; never the secret itself.
    secret_hash: str = field(repr=False)
    role: str = "shopper"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Caller:
    """Who makes a call: an authenticated API key and the organisations it may reach."""

    key_id: str
    organisations: frozenset[str]
    role: str = "shopper"

    @property
    def moderator(self) -> bool:
        return self.role == MODERATOR


@dataclass(frozen=True)
class PendingCreate:
    """One create waiting to be written: what was asked, for whom, by whom, and when."""

    new: NewConversation
    organisation: Organisation
    created_at: datetime.datetime
    created_by: str
    request_digest: str | None = None
    status: str = PUBLISHED
    held_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredCreate:
    """The conversation a create stored, or the one its request_id had stored before.

    `request_digest` is that of the request that stored it: the service tells a
    retry from a reused request_id by it.
    """

    conversation: Conversation
    request_digest: str | None


# The orders a List may ask for, and the columns of each order's key (each descending
# but `created_at asc`); `id` breaks the ties of conversations asked in the same second.
ORDERS: dict[str, tuple[str, ...]] = {
    "created_at desc": ("created_at", "id"),
    "created_at asc": ("created_at", "id"),
    "helpful desc": ("helpful", "created_at", "id"),
    "answers_count desc": ("answers_count", "created_at", "id"),
    # How well a conversation matches the search, as the database ranks it: higher first.
    "relevance": ("relevance", "created_at", "id"),
}
DEFAULT_ORDER = "created_at desc"
SEARCH_ORDER = "relevance"

# A position in an order: the key of the last conversation of a page, created_at
# as whole seconds since the epoch, relevance as the database's float.
PageKey = tuple[int | float, ...]
# What a product's rows in conversation_count hold: conversations, answers, revision. Every
# write that changes what a List, a Detail or a page of answers of the product shows
# changes it.
Stamp = tuple[int, int, int]
# Where a conversation's answers start: before every (created_at, id) an answer has.
ANSWERS_START: PageKey = (0, 0)


@dataclass(frozen=True)
class PageQuery:
    """One page of the conversations about a product (every product of the organisation
    when `sku` is None) that match `filter` and every word of `search`: after `after`,
    in `order`."""

    trkref: str
    sku: str | None
    locale: str | None
    order: str
    size: int
    after: PageKey | None = None
    # The words searched for, separated by single spaces; "" for no search.
    search: str = ""
    filter: Filter = NO_FILTER
    # How many answers each conversation carries at most, its oldest.
    answers: int = 3
    # Whose view: a shopper's answers are the published ones; a moderator's are of every
    # status, each with why it is held.
    role: str = SHOPPER


@dataclass(frozen=True)
class ConversationPage:
    """A page of conversations, the counts of the whole filtered set, and where the next
    page starts (None on the last page)."""

    conversations: tuple[Conversation, ...]
    question_count: int
    answers_count: int
    next_after: PageKey | None


@dataclass(frozen=True)
class AnswerQuery:
    """One page of a conversation's answers, oldest first: after `after` (created_at, id)."""

    trkref: str
    conversation_id: int
    size: int
    after: PageKey | None = None
    # Whose view (PageQuery.role); a moderator's conversation may be of any status.
    role: str = SHOPPER
    # A moderator's answers of one status only; None for every status the role sees.
    status: str | None = None


@dataclass(frozen=True)
class AnswerPage:
    """A page of a conversation's answers, how many it has in all, and where the next page
    starts (None on the last page)."""

    answers: tuple[Answer, ...]
    answers_count: int
    next_after: PageKey | None
