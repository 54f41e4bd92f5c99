"""Moderation's part of FakeStorage, in memory, as server.storage.moderation_store keeps it."""

from __future__ import annotations

import calendar
import functools
from dataclasses import replace
from typing import TYPE_CHECKING

from server.service.decisions import Decision, DecisionPage, QueueItem, QueuePage, RecordedDecision
from server.service.domain import ERASED, PENDING, PUBLISHED, PageKey
from server.service.reports import REPORTED, ItemReport, ReportOutcome, hold_decision
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
        # (target, target id) -> the reports' reasons, the reporter_ids that counted, and
        # how many reports came without one
        self.reports: dict[tuple[str, int], list[str]] = {}
        self.reporters: set[tuple[str, int, str]] = set()
        self.anonymous: dict[tuple[str, int], int] = {}

    @property
    def contacts(self) -> ContactDetails:
        return _contacts()

    async def blocked_terms(self, trkref: str) -> BlockedTerms:
        self._storage._call("blocked_terms")
        return BlockedTerms.compile(sorted(self.terms.get(trkref, ())))

    def add_terms(self, trkref: str, terms: list[str]) -> int | None:
        if trkref not in self._storage.by_trkref:
            return None
        kept = self.terms.setdefault(trkref, set())
        added = set(terms) - kept
        kept |= added
        return len(added)

    def remove_terms(self, trkref: str, terms: list[str]) -> int | None:
        if trkref not in self._storage.by_trkref:
            return None
        kept = self.terms.setdefault(trkref, set())
        removed = kept & set(terms)
        kept -= removed
        return len(removed)

    def list_terms(self, trkref: str) -> list[str] | None:
        if trkref not in self._storage.by_trkref:
            return None
        return sorted(self.terms.get(trkref, ()))

    async def terms_page(self, trkref: str, after: str | None, size: int) -> tuple[list[str], bool]:
        self._storage._call("terms_page")
        terms = [t for t in sorted(self.terms.get(trkref, ())) if after is None or t > after]
        return terms[:size], len(terms) > size

    async def decide(self, decision: Decision) -> RecordedDecision | None:
        self._storage._call("decide")
        s = self._storage
        if decision.to_status == ERASED:
            return self._erase(decision)
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

    def _erase(self, decision: Decision) -> RecordedDecision | None:
        s = self._storage
        if decision.target == "conversation":
            stored = s.conversations.get(decision.target_id)
            if stored is None or stored.conversation.trkref != decision.trkref:
                return None
            from_status = stored.conversation.status
            s._revise(decision.target_id)
            gone = [a for a, c in s._answered.items() if c == decision.target_id]
            for answer_id in gone:
                self._forget("answer", answer_id)
            self._forget("conversation", decision.target_id)
            del s.conversations[decision.target_id]
        else:
            conversation_id = s._answered.get(decision.target_id, 0)
            answered = s.answers.get(decision.target_id)
            if answered is None or s.conversations[conversation_id].conversation.trkref != (
                decision.trkref
            ):
                return None
            from_status = answered.answer.status
            s._revise(conversation_id)
            self._forget("answer", decision.target_id)
        recorded = RecordedDecision(len(self.log) + 1, decision, from_status)
        self.log.append(recorded)
        return recorded

    def _forget(self, target: str, target_id: int) -> None:
        """An erased item's votes and reports, and an answer itself."""
        s = self._storage
        self.reports.pop((target, target_id), None)
        self.anonymous.pop((target, target_id), None)
        self.reporters = {r for r in self.reporters if r[:2] != (target, target_id)}
        s._voters = {v for v in s._voters if v[:2] != (target, target_id)}
        if target == "answer":
            del s.answers[target_id]
            del s._answered[target_id]

    def _reported(self, report: ItemReport) -> tuple[str, str, int] | None:
        """The item's status, held_for, and the conversation to revise; None when it is
        out of the report's reach."""
        s = self._storage
        if report.target == "conversation":
            stored = s.conversations.get(report.target_id)
            if stored is None or stored.conversation.trkref != report.trkref:
                return None
            found = stored.conversation
            status, conversation_status = found.status, found.status
            conversation_id = report.target_id
        else:
            answered = s.answers.get(report.target_id)
            conversation_id = s._answered.get(report.target_id, 0)
            if answered is None or s.conversations[conversation_id].conversation.trkref != (
                report.trkref
            ):
                return None
            status = answered.answer.status
            conversation_status = s.conversations[conversation_id].conversation.status
        visible = status == PUBLISHED and conversation_status == PUBLISHED
        if report.published_only and not visible:
            return None
        return status, ",".join(self._held_for(report)), conversation_id

    def _held_for(self, report: ItemReport) -> tuple[str, ...]:
        s = self._storage
        if report.target == "conversation":
            return s.conversations[report.target_id].conversation.held_for
        return s.answers[report.target_id].answer.held_for

    async def report(self, report: ItemReport) -> ReportOutcome | None:
        self._storage._call("report")
        found = self._reported(report)
        if found is None:
            return None
        status, _, conversation_id = found
        key = (report.target, report.target_id)
        if report.reporter_id is not None:
            reporter = (*key, report.reporter_id)
            if reporter in self.reporters:
                return ReportOutcome(counted=False, held=False)
            self.reporters.add(reporter)
        reasons = self.reports.setdefault(key, [])
        reasons.append(report.reason)
        # Reports without a reporter_id are one reporter together, added by the first.
        anonymous = self.anonymous.setdefault(key, 0) + (report.reporter_id is None)
        self.anonymous[key] = anonymous
        named = sum(1 for reporter in self.reporters if reporter[:2] == key)
        added = report.reporter_id is not None or anonymous == 1
        threshold = self._storage.by_trkref[report.trkref].report_threshold
        if status != PUBLISHED or not added or named + (anonymous > 0) != threshold:
            return ReportOutcome(counted=True, held=False)
        held = self._held_for(report)
        held_for = held if REPORTED in held else (*held, REPORTED)
        s = self._storage
        if report.target == "conversation":
            stored = s.conversations[report.target_id]
            moved = stored.conversation._replace(status=PENDING, held_for=held_for)
            s.conversations[report.target_id] = replace(stored, conversation=moved)
        else:
            answered = s.answers[report.target_id]
            moved_answer = answered.answer._replace(status=PENDING, held_for=held_for)
            s.answers[report.target_id] = replace(answered, answer=moved_answer)
        s._revise(conversation_id)
        recorded = RecordedDecision(len(self.log) + 1, hold_decision(report, threshold), PUBLISHED)
        self.log.append(recorded)
        return ReportOutcome(counted=True, held=True)

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
        page = tuple(self._with_reports(ordered[:size]))
        return QueuePage(page, _queue_key(page[-1]) if len(ordered) > size else None)

    def _with_reports(self, items: list[QueueItem]) -> list[QueueItem]:
        counted = []
        for item in items:
            reasons = self.reports.get((item.target, (item.answer or item.conversation).id), [])
            by_reason = tuple(sorted((r, reasons.count(r)) for r in set(reasons)))
            counted.append(replace(item, reports=by_reason))
        return counted

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
