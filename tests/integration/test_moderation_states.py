"""A stateful property test of moderation, on SQLite and PostgreSQL: creates, answers,
votes, reports, screening hits, approvals, rejections and erasures in any order; after every
step a shopper reads exactly the published set, every count equals a full count in SQL, and
a moderator's Detail shows every conversation and answer with its status."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from harness.support import answer, create, store_key
from server.service import moderation, reports, votes
from server.service.conversations import ListRequest, get_conversation, list_conversations
from server.service.domain import (
    ERASED,
    PENDING,
    PUBLISHED,
    REJECTED,
    NewAnswer,
    NewConversation,
    Organisation,
)
from server.service.errors import AnswerNotFound, ConversationNotFound
from server.service.moderation import DecisionRequest
from server.service.organisations import add_organisation
from server.storage.store import Store
from tests.integration.test_moderation import assert_counts_exact

_organisations = itertools.count(1)
VERDICTS = ["approve", "reject"]
# Each machine's organisation's threshold of reporters: low, so that steps reach it.
THRESHOLD = 2


class Moderated(RuleBasedStateMachine):
    """The model: each conversation's status and its answers' statuses. `store` and
    `checked` (the states the invariant checked) are set and read by run_machine."""

    store: Store
    checked = 0

    def __init__(self) -> None:
        super().__init__()
        self.conversations: dict[int, str] = {}
        self.answers: dict[int, tuple[int, str]] = {}
        # (target, id) -> the reporters that counted
        self.reporters: dict[tuple[str, int], set[str]] = {}

    @initialize(pre=st.booleans())
    def organisation(self, pre: bool) -> None:
        n = next(_organisations)
        self.trkref = f"M{n}"
        add_organisation(
            self.store,
            Organisation(self.trkref, "M", "en-GB", "pre" if pre else "post", THRESHOLD),
        )
        self.pre = pre
        self.shopper = store_key(self.store, f"shopper-{n}", self.trkref)
        self.moderator = store_key(self.store, f"moderator-{n}", self.trkref, role="moderator")
        self.store.moderation.add_terms(self.trkref, ["blocked"])

    def _status(self, held: bool) -> str:
        return "pending" if held or self.pre else PUBLISHED

    @rule(sku=st.sampled_from(["S1", "S2"]), held=st.booleans())
    def ask(self, sku: str, held: bool) -> None:
        text = "blocked item?" if held else "Fits?"
        made = create(self.store, NewConversation(self.trkref, "A", text, sku), self.shopper)
        assert made.status == self._status(held)
        self.conversations[made.id] = made.status

    @rule(data=st.data(), held=st.booleans())
    def reply(self, data: st.DataObject, held: bool) -> None:
        if not self.conversations:
            return
        conversation = data.draw(st.sampled_from(sorted(self.conversations)))
        new = NewAnswer(self.trkref, conversation, "blocked" if held else "Yes", "B")
        if self.conversations[conversation] != PUBLISHED:
            try:
                answer(self.store, new, self.shopper)
            except ConversationNotFound:
                return
            raise AssertionError("an unpublished conversation was answered")
        made = answer(self.store, new, self.shopper)
        assert made.status == self._status(held)
        self.answers[made.id] = (conversation, made.status)

    @rule(data=st.data(), helpful=st.booleans())
    def vote(self, data: st.DataObject, helpful: bool) -> None:
        if not self.conversations:
            return
        conversation = data.draw(st.sampled_from(sorted(self.conversations)))
        counter = "helpful" if helpful else "unhelpful"
        try:
            asyncio.run(
                votes.vote(self.store, self.shopper, target="conversation",
                           target_id=conversation, counter=counter, trkref=self.trkref)
            )  # fmt: skip
        except ConversationNotFound:
            assert self.conversations[conversation] != PUBLISHED
        else:
            assert self.conversations[conversation] == PUBLISHED

    @rule(data=st.data(), verdict=st.sampled_from(["approve", "reject"]), on_answer=st.booleans())
    def decide(self, data: st.DataObject, verdict: str, on_answer: bool) -> None:
        items = self.answers if on_answer else self.conversations
        if not items:
            return
        target_id = data.draw(st.sampled_from(sorted(items)))
        target = "answer" if on_answer else "conversation"
        asked = DecisionRequest(self.trkref, target, target_id, verdict)
        recorded = asyncio.run(moderation.decide(self.store, asked, self.moderator))
        to_status = PUBLISHED if verdict == "approve" else REJECTED
        before = self.answers[target_id][1] if on_answer else self.conversations[target_id]
        assert recorded.from_status == before
        assert (recorded.id == 0) == (before == to_status)
        if on_answer:
            self.answers[target_id] = (self.answers[target_id][0], to_status)
        else:
            self.conversations[target_id] = to_status

    def _visible(self, target: str, target_id: int) -> bool:
        if target == "conversation":
            return self.conversations[target_id] == PUBLISHED
        conversation, status = self.answers[target_id]
        return status == PUBLISHED and self.conversations[conversation] == PUBLISHED

    @rule(data=st.data(), on_answer=st.booleans(), reporter=st.sampled_from(["r1", "r2", "r3", ""]))
    def report(self, data: st.DataObject, on_answer: bool, reporter: str) -> None:
        items = self.answers if on_answer else self.conversations
        if not items:
            return
        target_id = data.draw(st.sampled_from(sorted(items)))
        target = "answer" if on_answer else "conversation"
        visible = self._visible(target, target_id)
        try:
            outcome = asyncio.run(
                reports.report(self.store, self.shopper, target=target, target_id=target_id,
                               trkref=self.trkref, reason="spam", reporter_id=reporter)
            )  # fmt: skip
        except (ConversationNotFound, AnswerNotFound):
            assert not visible
            return
        assert visible
        counted = self.reporters.setdefault((target, target_id), set())
        # Every report without a reporter_id ("") counts, as one reporter together.
        added = reporter not in counted
        assert outcome.counted == (added or reporter == "")
        counted.add(reporter)
        assert outcome.held == (added and len(counted) == THRESHOLD)
        if outcome.held and on_answer:
            self.answers[target_id] = (self.answers[target_id][0], PENDING)
        elif outcome.held:
            self.conversations[target_id] = PENDING

    @rule(data=st.data(), on_answer=st.booleans())
    def erase(self, data: st.DataObject, on_answer: bool) -> None:
        items = self.answers if on_answer else self.conversations
        if not items:
            return
        target_id = data.draw(st.sampled_from(sorted(items)))
        target = "answer" if on_answer else "conversation"
        asked = DecisionRequest(self.trkref, target, target_id, "erase")
        recorded = asyncio.run(moderation.decide(self.store, asked, self.moderator))
        assert recorded.decision.to_status == ERASED
        if on_answer:
            del self.answers[target_id]
            return
        del self.conversations[target_id]
        self.answers = {a: (c, s) for a, (c, s) in self.answers.items() if c != target_id}

    @invariant()
    def shoppers_read_the_published_set(self) -> None:
        if not hasattr(self, "trkref"):
            return
        published = {i for i, status in self.conversations.items() if status == PUBLISHED}
        answers_of = {
            i: sum(1 for c, s in self.answers.values() if c == i and s == PUBLISHED)
            for i in self.conversations
        }
        asked = ListRequest(self.trkref, page_size=100)
        page, _ = asyncio.run(list_conversations(self.store, asked, self.shopper))
        assert {c.id for c in page.conversations} == published
        assert page.question_count == len(published)
        assert page.answers_count == sum(answers_of[i] for i in published)
        for conversation in page.conversations:
            assert conversation.answers_count == answers_of[conversation.id]
            assert conversation.status == PUBLISHED
        for i in set(self.conversations) - published:
            try:
                asyncio.run(get_conversation(self.store, self.trkref, i, self.shopper))
            except ConversationNotFound:
                continue
            raise AssertionError(f"conversation {i} is not published yet is read")
        assert_counts_exact(self.store)
        Moderated.checked += 1

    @invariant()
    def moderators_read_every_status(self) -> None:
        if not hasattr(self, "trkref"):
            return
        for i, status in self.conversations.items():
            found = asyncio.run(get_conversation(self.store, self.trkref, i, self.moderator))
            assert found.status == status
            assert {a.id: a.status for a in found.answers} == {
                a: s for a, (c, s) in self.answers.items() if c == i
            }


def run_machine(store: Store) -> int:
    """Run the machine on `store`; how many states the invariant checked."""
    Moderated.store, Moderated.checked = store, 0
    Moderated.TestCase.settings = settings(
        max_examples=12, stateful_step_count=10, deadline=None, database=None
    )
    Moderated.TestCase().runTest()
    return Moderated.checked


def test_shoppers_read_exactly_the_published_set_through_any_steps(store: Store) -> None:
    assert run_machine(store) > 12 * 5
