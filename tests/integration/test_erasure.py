"""Erasure on SQLite and PostgreSQL: the text is nowhere in the database afterwards (plain
SQL over every table that held it), the counts stay exact, the log records it without the
text, and an erased id is the missing one's."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from harness.support import CALLER, add_organisation_with_key, answer, create
from server.service import reports, votes
from server.service.decisions import Decision
from server.service.domain import ERASED, PUBLISHED, Caller, NewAnswer, NewConversation
from server.service.errors import AnswerNotFound, ConversationNotFound
from server.service.ports import Storage
from server.storage.store import Store
from tests.integration.test_moderation import assert_counts_exact, decide, moderator, shown

SECRET = "Zanzibarian"
# Every table that holds a shopper's text, or a row that points at an item.
TABLES = ["conversation", "answer", "conversation_search", "vote", "report"]


def text_anywhere(store: Store) -> list[str]:
    """The tables where SECRET is, read back as text whole rows."""
    found = []
    with store.reading():
        for table in TABLES:
            rows = store.db.execute_sql(f"SELECT * FROM {table}").fetchall()  # type: ignore[no-untyped-call]
            if any(SECRET.lower() in str(row).lower() for row in rows):
                found.append(table)
    return found


def report_and_vote(store: Store, caller: Caller, target: str, target_id: int) -> None:
    asyncio.run(votes.vote(store, caller, target=target, target_id=target_id,
                           counter="helpful", trkref="D10", voter_id="v1"))  # fmt: skip
    asyncio.run(reports.report(store, caller, target=target, target_id=target_id,
                               trkref="D10", reason="spam", reporter_id="r1"))  # fmt: skip


def test_an_erased_conversation_leaves_no_text_and_exact_counts(
    store: Store, organisation: object
) -> None:
    boss = moderator(store)
    kept = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    answer(store, NewAnswer("D10", kept.id, "Yes", "Bo"), CALLER)
    erased = create(store, NewConversation("D10", SECRET, f"Is {SECRET} here?", "S1"), CALLER)
    given = answer(store, NewAnswer("D10", erased.id, f"{SECRET} says yes", SECRET), CALLER)
    report_and_vote(store, CALLER, "conversation", erased.id)
    report_and_vote(store, CALLER, "answer", given.id)
    assert text_anywhere(store) == ["conversation", "answer", "conversation_search"]
    recorded = decide(store, boss, "conversation", erased.id, "erase")
    assert (recorded.from_status, recorded.decision.to_status) == (PUBLISHED, ERASED)
    assert text_anywhere(store) == []
    assert shown(store) == ({kept.id}, 1, 1)
    assert_counts_exact(store)
    with store.reading():
        log = store.db.execute_sql("SELECT * FROM moderation_decision").fetchall()  # type: ignore[no-untyped-call]
        left = store.db.execute_sql(  # type: ignore[no-untyped-call]
            f"SELECT (SELECT COUNT(*) FROM vote) + (SELECT COUNT(*) FROM report)"
            f" WHERE {erased.id} > 0 AND {given.id} > 0"
        ).fetchone()
    # Only the other conversation's votes and reports are left: none were made on it.
    assert SECRET not in str(log) and left == (0,)
    with pytest.raises(ConversationNotFound):
        decide(store, boss, "conversation", erased.id, "erase")


def test_an_erased_answer_leaves_its_conversation_exact(store: Store, organisation: object) -> None:
    boss = moderator(store)
    store.moderation.add_terms("D10", ["held"])
    conversation = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    published = answer(store, NewAnswer("D10", conversation.id, f"{SECRET} yes", "Bo"), CALLER)
    held = answer(store, NewAnswer("D10", conversation.id, f"held {SECRET}", "Cy"), CALLER)
    for given in (published, held):
        decide(store, boss, "answer", given.id, "erase")
    assert text_anywhere(store) == []
    assert shown(store) == ({conversation.id}, 1, 0)
    assert_counts_exact(store)
    with pytest.raises(AnswerNotFound):
        decide(store, boss, "answer", held.id, "erase")


def test_the_port_erases_on_every_storage(storage: Storage) -> None:
    add_organisation_with_key(storage)
    conversation = create(storage, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    given = answer(storage, NewAnswer("D10", conversation.id, "Yes", "Bo"), CALLER)
    at = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    erase = storage.moderation.decide
    wrong = Decision("E20", "answer", given.id, ERASED, "boss", at)
    assert asyncio.run(erase(wrong)) is None
    recorded = asyncio.run(erase(Decision("D10", "answer", given.id, ERASED, "boss", at)))
    assert recorded is not None and recorded.from_status == PUBLISHED
    found = asyncio.run(storage.read_conversation(conversation.id, 20, "D10"))
    assert found is not None and (found.answers, found.answers_count) == ((), 0)
    gone = Decision("D10", "conversation", conversation.id, ERASED, "boss", at)
    assert asyncio.run(erase(gone)) is not None
    assert asyncio.run(storage.read_conversation(conversation.id, 20, "D10")) is None
    assert asyncio.run(erase(gone)) is None
    log = asyncio.run(storage.moderation.decision_page("D10", None, 10)).decisions
    assert [(d.decision.target, d.decision.to_status) for d in log] == [
        ("conversation", ERASED),
        ("answer", ERASED),
    ]
