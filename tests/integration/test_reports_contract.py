"""Reports keep the port's promises on the fake, SQLite and PostgreSQL alike: one per
reporter, the threshold reached once, the item back in the queue and out of shoppers' reads,
the counts with it, the decision logged without a key."""

from __future__ import annotations

import asyncio
import datetime

from harness.support import CALLER, ORGANISATION, add_organisation_with_key, insert
from server.service.domain import (
    PENDING,
    PUBLISHED,
    NewAnswer,
    NewConversation,
    PendingAnswer,
    PendingCreate,
)
from server.service.ports import Storage
from server.service.reports import ItemReport, ReportOutcome

AT = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def report(
    storage: Storage,
    target: str,
    target_id: int,
    reporter: str | None,
    *,
    trkref: str = "D10",
    published_only: bool = True,
    reason: str = "spam",
) -> ReportOutcome | None:
    asked = ItemReport(
        target, target_id, trkref, reason, CALLER.key_id, AT, reporter, published_only
    )
    return asyncio.run(storage.moderation.report(asked))


def published_conversation(storage: Storage, question: str = "Fits?") -> int:
    new = NewConversation("D10", "Ann", question, "S1")
    return insert(storage, PendingCreate(new, ORGANISATION, AT, CALLER.key_id)).conversation.id


def published_answer(storage: Storage, conversation: int) -> int:
    new = NewAnswer("D10", conversation, "It fits", "Bo")
    stored = asyncio.run(storage.insert_answer(PendingAnswer(new, AT, CALLER.key_id)))
    assert stored is not None
    return stored.answer.id


def test_three_reporters_send_a_conversation_back_once(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = published_conversation(storage)
    counted = ReportOutcome(counted=True, held=False)
    assert report(storage, "conversation", conversation, "a") == counted
    assert report(storage, "conversation", conversation, "a") == ReportOutcome(False, False)
    assert report(storage, "conversation", conversation, None) == counted
    assert report(storage, "conversation", conversation, "b") == ReportOutcome(True, True)
    assert asyncio.run(storage.read_conversation(conversation, 20, "D10")) is None
    # Now pending: a shopper's report is the missing item's; a moderator's counts.
    assert report(storage, "conversation", conversation, "c") is None
    assert report(storage, "conversation", conversation, "c", published_only=False) == counted
    queue = asyncio.run(storage.moderation.queue_page("D10", None, 10))
    [item] = queue.items
    assert item.conversation.id == conversation and item.conversation.status == PENDING
    assert item.held_for == ("reported",) and item.reports == (("spam", 4),)
    log = asyncio.run(storage.moderation.decision_page("D10", None, 10)).decisions
    assert [(d.decision.decided_by, d.decision.reason, d.from_status) for d in log] == [
        ("", "reported", PUBLISHED)
    ]


def test_reports_without_a_reporter_id_are_one_reporter(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = published_conversation(storage)
    counted = ReportOutcome(counted=True, held=False)
    for _ in range(5):  # recorded, but one reporter: the threshold of 3 is not reached
        assert report(storage, "conversation", conversation, None) == counted
    assert asyncio.run(storage.read_conversation(conversation, 20, "D10")) is not None
    assert report(storage, "conversation", conversation, "a") == counted
    assert report(storage, "conversation", conversation, None) == counted
    assert report(storage, "conversation", conversation, "b") == ReportOutcome(True, True)
    assert asyncio.run(storage.read_conversation(conversation, 20, "D10")) is None
    [item] = asyncio.run(storage.moderation.queue_page("D10", None, 10)).items
    assert item.reports == (("spam", 8),)


def test_an_anonymous_report_adds_the_threshold_s_reporter_once(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = published_conversation(storage)
    counted = ReportOutcome(counted=True, held=False)
    assert report(storage, "conversation", conversation, "a") == counted
    assert report(storage, "conversation", conversation, "b") == counted
    assert report(storage, "conversation", conversation, None) == ReportOutcome(True, True)
    decisions = asyncio.run(storage.moderation.decision_page("D10", None, 10)).decisions
    assert len(decisions) == 1


def test_an_answer_reported_leaves_its_conversations_count(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = published_conversation(storage)
    answer = published_answer(storage, conversation)
    for reporter in ("a", "b"):
        assert report(storage, "answer", answer, reporter) == ReportOutcome(True, False)
    assert report(storage, "answer", answer, "c") == ReportOutcome(True, True)
    found = asyncio.run(storage.read_conversation(conversation, 20, "D10"))
    assert found is not None and found.answers_count == 0 and found.answers == ()
    assert report(storage, "answer", answer, "d") is None


def test_reports_stay_in_their_organisation(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = published_conversation(storage)
    assert report(storage, "conversation", conversation, "a", trkref="E20") is None
    assert report(storage, "conversation", 999, "a") is None
    assert report(storage, "answer", 999, "a", published_only=False) is None


def test_the_queue_counts_an_items_reports_by_reason(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = published_conversation(storage)
    answer = published_answer(storage, conversation)
    for reporter, reason in (("a", "spam"), ("b", "other"), ("c", "off_topic")):
        assert report(storage, "answer", answer, reporter, reason=reason) is not None
    for reporter, reason in (("d", "spam"), ("e", "offensive")):
        moderators = report(
            storage, "answer", answer, reporter, published_only=False, reason=reason
        )
        assert moderators == ReportOutcome(True, False)
    [item] = asyncio.run(storage.moderation.queue_page("D10", None, 10)).items
    assert (item.target, item.answer and item.answer.id) == ("answer", answer)
    assert item.conversation.id == conversation and item.conversation.status == PUBLISHED
    assert item.reports == (("off_topic", 1), ("offensive", 1), ("other", 1), ("spam", 2))
