"""The plain values of moderation: a decision, the decision log, the queue and their pages."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from server.service.domain import VOTE_TARGETS, Answer, Conversation, PageKey

# What a moderator decides on: a conversation or an answer (VOTE_TARGETS' kinds).
MODERATION_TARGETS = VOTE_TARGETS


@dataclass(frozen=True)
class Decision:
    """A moderator's decision: `target_id` (a conversation or an answer of `trkref`) moves
    to `to_status`, for `reason`, with a note."""

    trkref: str
    target: str  # one of MODERATION_TARGETS
    target_id: int
    to_status: str  # PUBLISHED (approve) or REJECTED (reject)
    decided_by: str  # the moderator's API key
    decided_at: datetime.datetime
    reason: str = ""
    note: str = ""


@dataclass(frozen=True)
class RecordedDecision:
    """A decision as the log holds it; `id` 0 when it changed nothing and so was not logged."""

    id: int
    decision: Decision
    from_status: str


@dataclass(frozen=True)
class QueueItem:
    """A pending conversation or answer in its organisation's queue, with why it is held."""

    target: str  # one of MODERATION_TARGETS
    conversation: Conversation  # the conversation, or the one the answer answers
    answer: Answer | None = None
    # Its reports: (reason, how many), by reason.
    reports: tuple[tuple[str, int], ...] = ()

    @property
    def created_at(self) -> datetime.datetime:
        return (self.answer or self.conversation).created_at

    @property
    def held_for(self) -> tuple[str, ...]:
        return (self.answer or self.conversation).held_for


@dataclass(frozen=True)
class QueuePage:
    """A page of an organisation's queue, oldest first, and where the next page starts
    (after (created_at, 0 for a conversation or 1 for an answer, id))."""

    items: tuple[QueueItem, ...]
    next_after: PageKey | None


@dataclass(frozen=True)
class DecisionPage:
    """A page of an organisation's decisions, newest first, and where the next page starts
    (before (id,))."""

    decisions: tuple[RecordedDecision, ...]
    next_after: PageKey | None


@dataclass(frozen=True)
class ModerationQuery:
    """A page of an organisation's queue, decision log or blocked terms (`kind`); a page
    token is bound to both."""

    kind: str  # "queue", "decisions" or "blocked_terms"
    trkref: str
    size: int = 20
