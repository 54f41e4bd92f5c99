"""Moderation on SQLite and PostgreSQL: what a submission's status is, what shoppers read,
the counts through every decision, the migration of existing rows, racing decisions."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from playhouse.migrations import Runner

from harness.support import CALLER, answer, create, store_key
from server.package_data import MIGRATIONS
from server.service import moderation
from server.service.conversations import ListRequest, list_conversations
from server.service.domain import PENDING, PUBLISHED, REJECTED, Caller, NewAnswer, NewConversation
from server.service.errors import ConversationNotFound, PermissionDenied
from server.service.moderation import DecisionRequest
from server.storage.store import Store

MIGRATION = "0011_moderation"
# The migrations after it, reverted before it and applied again after it.
LATER = [
    "0012_reports",
    "0013_search_published_answers",
    "0014_folded_blocked_terms",
    "0015_revisions_by_triggers",
]


def moderator(store: Store) -> Caller:
    return store_key(store, "moderator-key", "D10", role="moderator")


def decide(store: Store, caller: Caller, target: str, target_id: int, verdict: str) -> Any:
    asked = DecisionRequest("D10", target, target_id, verdict, reason="r", note="n")
    return asyncio.run(moderation.decide(store, asked, caller))


def shown(store: Store) -> tuple[set[int], int, int]:
    """The conversation ids a shopper's organisation-wide List shows, and its summary."""
    page, _ = asyncio.run(list_conversations(store, ListRequest("D10", page_size=100), CALLER))
    return {c.id for c in page.conversations}, page.question_count, page.answers_count


def sql_counts(store: Store) -> dict[str, Any]:
    """Every count the service keeps, counted again in full by SQL."""
    published = "status = 'published'"
    queries = {
        "questions": f"SELECT COUNT(*) FROM conversation WHERE {published}",
        "answers": "SELECT COUNT(*) FROM answer a JOIN conversation c ON c.id = a.conversation_id"
        f" WHERE a.{published} AND c.{published}",
        "kept": "SELECT COALESCE(SUM(question_count), 0), COALESCE(SUM(answers_count), 0),"
        " COALESCE(SUM(answered_count), 0) FROM conversation_count",
        "organisation": "SELECT COALESCE(SUM(question_count), 0), COALESCE(SUM(answers_count), 0),"
        " COALESCE(SUM(answered_count), 0) FROM organisation_count",
        "answered": f"SELECT COUNT(*) FROM conversation c WHERE c.{published} AND EXISTS"
        f" (SELECT 1 FROM answer a WHERE a.conversation_id = c.id AND a.{published})",
        "per_conversation": "SELECT COUNT(*) FROM conversation c WHERE c.answers_count <>"
        f" (SELECT COUNT(*) FROM answer a WHERE a.conversation_id = c.id AND a.{published})",
    }
    with store.reading():
        return {
            name: tuple(int(v) for v in store.db.execute_sql(sql).fetchone())  # type: ignore[no-untyped-call]
            for name, sql in queries.items()
        }


def assert_counts_exact(store: Store) -> None:
    counts = sql_counts(store)
    expected = (counts["questions"][0], counts["answers"][0], counts["answered"][0])
    assert counts["kept"] == expected
    assert counts["organisation"] == expected
    assert counts["per_conversation"] == (0,)


def test_screening_holds_and_shoppers_see_published_items_only(
    store: Store, organisation: object
) -> None:
    store.moderation.add_terms("D10", ["spam"])
    kept = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    held = create(store, NewConversation("D10", "Bo", "Great SPAM here", "S1"), CALLER)
    assert (kept.status, kept.held_for) == (PUBLISHED, ())
    assert (held.status, held.held_for) == (PENDING, ("blocked_term",))
    assert shown(store) == ({kept.id}, 1, 0)
    with pytest.raises(ConversationNotFound):
        answer(store, NewAnswer("D10", held.id, "Yes", "Cy"), CALLER)
    mail = answer(store, NewAnswer("D10", kept.id, "Write to me@example.com", "Cy"), CALLER)
    assert (mail.status, mail.held_for) == (PENDING, ("email_address",))
    assert shown(store) == ({kept.id}, 1, 0)
    assert_counts_exact(store)


def test_decisions_move_the_counts_exactly_and_are_logged(
    store: Store, organisation: object
) -> None:
    boss = moderator(store)
    store.moderation.add_terms("D10", ["spam"])
    first = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    held = create(store, NewConversation("D10", "Bo", "spam?", "S1"), CALLER)
    kept = answer(store, NewAnswer("D10", first.id, "Yes", "Cy"), CALLER)
    pending = answer(store, NewAnswer("D10", first.id, "spam", "Di"), CALLER)
    assert shown(store) == ({first.id}, 1, 1)
    assert decide(store, boss, "conversation", held.id, "approve").id > 0
    assert decide(store, boss, "answer", pending.id, "approve").id > 0
    assert shown(store) == ({first.id, held.id}, 2, 2)
    assert_counts_exact(store)
    assert decide(store, boss, "answer", kept.id, "approve").id == 0  # changes nothing
    assert decide(store, boss, "conversation", first.id, "reject").decision.to_status == REJECTED
    assert shown(store) == ({held.id}, 1, 0)
    assert_counts_exact(store)
    assert decide(store, boss, "conversation", first.id, "approve").from_status == REJECTED
    assert shown(store) == ({first.id, held.id}, 2, 2)
    assert_counts_exact(store)
    page, _ = asyncio.run(moderation.read_decisions(store, "D10", 0, "", boss))
    assert [
        (d.decision.target_id, d.from_status, d.decision.to_status) for d in page.decisions
    ] == [
        (first.id, REJECTED, PUBLISHED),
        (first.id, PUBLISHED, REJECTED),
        (pending.id, PENDING, PUBLISHED),
        (held.id, PENDING, PUBLISHED),
    ]
    with pytest.raises(PermissionDenied):
        decide(store, CALLER, "conversation", first.id, "reject")


def test_the_queue_is_oldest_first_a_page_at_a_time(store: Store, organisation: object) -> None:
    boss = moderator(store)
    store.moderation.add_terms("D10", ["held"])
    base = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    items = []
    for n in range(5):
        items.append(
            (
                "conversation",
                create(store, NewConversation("D10", "A", f"held {n}", "S1"), CALLER).id,
            )
        )
        items.append(
            ("answer", answer(store, NewAnswer("D10", base.id, f"held {n}", "B"), CALLER).id)
        )
    read: list[tuple[str, int]] = []
    token = ""
    for _ in range(10):
        page, token = asyncio.run(moderation.read_queue(store, "D10", 3, token, boss))
        read += [(i.target, (i.answer or i.conversation).id) for i in page.items]
        assert all(i.held_for == ("blocked_term",) for i in page.items)
        if not token:
            break
    assert sorted(read) == sorted(items) and len(read) == len(items)


def test_existing_rows_migrate_as_published_with_their_counts(
    store: Store, organisation: object
) -> None:
    first = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    answer(store, NewAnswer("D10", first.id, "Yes", "Cy"), CALLER)
    create(store, NewConversation("D10", "Bo", "Why?", "S2"), CALLER)
    before = shown(store)
    runner = Runner(store.db, str(MIGRATIONS))
    with store.reading():
        assert runner.down(MIGRATION) == [*reversed(LATER), MIGRATION]
        assert runner.up() == [MIGRATION, *LATER]
    assert shown(store) == before
    assert_counts_exact(store)
    # Reverted, held items become what the code before shows: published, and counted.
    store.moderation.add_terms("D10", ["held"])
    held = create(store, NewConversation("D10", "Di", "held?", "S2"), CALLER)
    answer(store, NewAnswer("D10", first.id, "held", "Ed"), CALLER)
    with store.reading():
        assert runner.down(MIGRATION) == [*reversed(LATER), MIGRATION]
        assert runner.up() == [MIGRATION, *LATER]
    ids, questions, answers = shown(store)
    assert held.id in ids and (questions, answers) == (before[1] + 1, before[2] + 1)
    assert_counts_exact(store)
    later = create(store, NewConversation("D10", "Cy", "And?", "S1"), CALLER)
    assert later.status == PUBLISHED
    assert_counts_exact(store)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_racing_decisions_leave_a_state_the_log_explains(
    store: Store, organisation: object
) -> None:
    boss = moderator(store)
    store.moderation.add_terms("D10", ["held"])
    verdicts = ["approve", "approve", "reject", "approve", "reject", "reject"]
    for round_ in range(5):
        held = create(store, NewConversation("D10", "A", f"held {round_}", "S1"), CALLER)
        barrier = threading.Barrier(len(verdicts), timeout=30)
        outcomes: list[Any] = []

        def run(verdict: str, held_id: int, barrier: threading.Barrier, into: list[Any]) -> None:
            barrier.wait()
            into.append(decide(store, boss, "conversation", held_id, verdict))

        threads = [
            threading.Thread(target=run, args=(v, held.id, barrier, outcomes)) for v in verdicts
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        logged = sorted((o for o in outcomes if o.id), key=lambda o: o.id)
        # Each logged decision starts where the one before it ended; the last is the state.
        status = PENDING
        for recorded in logged:
            assert recorded.from_status == status
            status = recorded.decision.to_status
        final = store.get_conversation(held.id)
        assert (final is not None) == (status == PUBLISHED)
        assert len(outcomes) == len(verdicts)
        assert_counts_exact(store)


def test_a_moderator_lists_by_status_and_the_cache_follows_every_decision(
    store: Store, organisation: object
) -> None:
    boss = moderator(store)
    store.moderation.add_terms("D10", ["held"])
    kept = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    held = [create(store, NewConversation("D10", "A", f"held {n}", "S1"), CALLER) for n in range(2)]

    def listed(status: str, caller: Caller = boss) -> tuple[list[int], int, set[str]]:
        asked = ListRequest("D10", "S1", filter=f"status = {status}", page_size=100)
        page, _ = asyncio.run(list_conversations(store, asked, caller))
        ids = sorted(c.id for c in page.conversations)
        return ids, page.question_count, {c.status for c in page.conversations}

    assert listed("PENDING") == (sorted(c.id for c in held), 2, {PENDING})
    assert listed('"PUBLISHED"') == ([kept.id], 1, {PUBLISHED})
    decide(store, boss, "conversation", held[0].id, "reject")
    assert listed("PENDING") == ([held[1].id], 1, {PENDING})
    assert listed("REJECTED") == ([held[0].id], 1, {REJECTED})
    with pytest.raises(PermissionDenied):
        listed("PENDING", CALLER)
