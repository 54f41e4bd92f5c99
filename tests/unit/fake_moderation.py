"""Moderation's part of FakeStorage, in memory, as server.storage.moderation_store keeps it."""

from __future__ import annotations

import calendar
import functools
from dataclasses import replace
from typing import TYPE_CHECKING

from server.service.domain import (
    PENDING,
    Decision,
    DecisionPage,
    PageKey,
    QueueItem,
    QueuePage,
    RecordedDecision,
)
from server.service.screening import BlockedTerms, ContactDetails

if TYPE_CHECKING:
    from tests.unit.fakes import FakeStorage


@functools.cache
def _contacts() -> ContactDetails:
    """Built once for every fake: it takes a while."""
    return ContactDetails()


class FakeModeration:
    def __init__(self, storage: FakeStorage) -> None:
        self._storage = storage
        self.terms: dict[str, set[str]] = {}
        self.log: list[RecordedDecision] = []

    @property
    def contacts(self) -> ContactDetails:
        return _contacts()

    async def blocked_terms(self, trkref: str) -> BlockedTerms:
        self._storage._call("blocked_terms")
        return BlockedTerms.compile(sorted(self.terms.get(trkref, ())))

    def add_terms(self, trkref: str, terms: list[str]) -> int | None:
        if trkref not in self._storage.organisations:
            return None
        kept = self.terms.setdefault(trkref, set())
        added = set(terms) - kept
        kept |= added
        return len(added)

    def remove_terms(self, trkref: str, terms: list[str]) -> int | None:
        if trkref not in self._storage.organisations:
            return None
        kept = self.terms.setdefault(trkref, set())
        removed = kept & set(terms)
        kept -= removed
        return len(removed)

    def list_terms(self, trkref: str) -> list[str] | None:
        if trkref not in self._storage.organisations:
            return None
        return sorted(self.terms.get(trkref, ()))

    async def decide(self, decision: Decision) -> RecordedDecision | None:
        self._storage._call("decide")
        s = self._storage
        if decision.target == "conversation":
            stored = s.conversations.get(decision.target_id)
            if stored is None or stored.conversation.trkref != decision.trkref:
                return None
            from_status = stored.conversation.status
            conversation = stored.conversation._replace(status=decision.to_status)
            s.conversations[decision.target_id] = replace(stored, conversation=conversation)
            revised = decision.target_id
        else:
            answered = s.answers.get(decision.target_id)
            revised = s._answered.get(decision.target_id, 0)
            if answered is None or s.conversations[revised].conversation.trkref != decision.trkref:
                return None
            from_status = answered.answer.status
            answer = answered.answer._replace(status=decision.to_status)
            s.answers[decision.target_id] = replace(answered, answer=answer)
        if from_status == decision.to_status:
            return RecordedDecision(0, decision, from_status)
        s._revise(revised)
        recorded = RecordedDecision(len(self.log) + 1, decision, from_status)
        self.log.append(recorded)
        return recorded

    async def queue_page(self, trkref: str, after: PageKey | None, size: int) -> QueuePage:
        self._storage._call("queue_page")
        s = self._storage
        items = [
            QueueItem("conversation", c.conversation)
            for c in s.conversations.values()
            if c.conversation.trkref == trkref and c.conversation.status == PENDING
        ]
        for answer_id, conversation_id in s._answered.items():
            conversation = s.conversations[conversation_id].conversation
            answer = s.answers[answer_id].answer
            if conversation.trkref == trkref and answer.status == PENDING:
                items.append(QueueItem("answer", conversation, answer))
        ordered = sorted(items, key=_queue_key)
        if after is not None:
            ordered = [item for item in ordered if _queue_key(item) > after]
        page = tuple(ordered[:size])
        return QueuePage(page, _queue_key(page[-1]) if len(ordered) > size else None)

    async def decision_page(self, trkref: str, after: PageKey | None, size: int) -> DecisionPage:
        self._storage._call("decision_page")
        found = [
            d
            for d in reversed(self.log)
            if d.decision.trkref == trkref and (after is None or d.id < after[0])
        ]
        page = tuple(found[:size])
        return DecisionPage(page, (page[-1].id,) if len(found) > size else None)


def _queue_key(item: QueueItem) -> PageKey:
    found = item.answer or item.conversation
    kind = 0 if item.answer is None else 1
    return (calendar.timegm(found.created_at.utctimetuple()), kind, found.id)
