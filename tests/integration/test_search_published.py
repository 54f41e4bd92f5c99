"""A shopper's search matches the text of published answers only, on SQLite and
PostgreSQL: a held answer's words match when it is approved, and no more when rejected;
migration 0013 both ways rebuilds the index (reverted, it holds every answer's text)."""

from __future__ import annotations

import asyncio

from playhouse.migrations import Runner

from harness.support import CALLER, add_organisation_with_key, answer, create, store_key
from server.package_data import MIGRATIONS
from server.service import moderation
from server.service.conversations import ListRequest, list_conversations
from server.service.domain import Caller, NewAnswer, NewConversation
from server.storage.store import Store

MIGRATION = "0013_search_published_answers"
LATER = ["0014_folded_blocked_terms", "0015_revisions_by_triggers"]
BOSS = Caller(key_id="boss", organisations=frozenset({"D10"}), role="moderator")


def found(store: Store, words: str) -> list[int]:
    page, _ = asyncio.run(list_conversations(store, ListRequest("D10", search=words), CALLER))
    return [c.id for c in page.conversations]


def decide(store: Store, answer_id: int, verdict: str) -> None:
    asked = moderation.DecisionRequest("D10", "answer", answer_id, verdict)
    asyncio.run(moderation.decide(store, asked, BOSS))


def test_held_answers_words_match_no_shoppers_search(store: Store) -> None:
    add_organisation_with_key(store)
    store_key(store, BOSS.key_id, "D10", role="moderator")
    store.moderation.add_terms("D10", ["held"])
    shown = create(store, NewConversation("D10", "Ann", "Does it fit?", "S1"), CALLER)
    given = answer(store, NewAnswer("D10", shown.id, "held zebra stripes", "Bo"), CALLER)
    answer(store, NewAnswer("D10", shown.id, "plain giraffe", "Cy"), CALLER)
    assert found(store, "zebra") == [] and found(store, "giraffe") == [shown.id]
    decide(store, given.id, "approve")
    assert found(store, "zebra") == [shown.id]
    decide(store, given.id, "reject")
    assert found(store, "zebra") == [] and found(store, "giraffe") == [shown.id]
    runner = Runner(store.db, str(MIGRATIONS))
    with store.reading():
        reverted = [*LATER[::-1], MIGRATION]
        assert runner.down(MIGRATION) == reverted
    # Reverted, the index holds every answer's text again, as 0010 built it.
    assert found(store, "zebra") == [shown.id]
    with store.reading():
        assert runner.up() == reverted[::-1]
    assert found(store, "zebra") == [] and found(store, "giraffe") == [shown.id]
