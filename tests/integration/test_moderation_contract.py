"""The fake keeps the moderation port's promises as the Store does: on the fake, SQLite and
PostgreSQL alike."""

from __future__ import annotations

import asyncio
import datetime

from harness.support import CALLER, ORGANISATION, add_organisation_with_key, insert
from server.service.decisions import Decision
from server.service.domain import (
    PENDING,
    PUBLISHED,
    REJECTED,
    Conversation,
    NewAnswer,
    NewConversation,
    Organisation,
    PendingAnswer,
    PendingCreate,
)
from server.service.ports import Storage

AT = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def read(storage: Storage, conversation_id: int) -> Conversation | None:
    """What a shopper's Detail reads of a conversation."""
    return asyncio.run(storage.read_conversation(conversation_id, 20, "D10"))


def held(storage: Storage, question: str, at: datetime.datetime = AT) -> int:
    new = NewConversation("D10", "Ann", question, "S1")
    pending = PendingCreate(new, ORGANISATION, at, CALLER.key_id, None, PENDING, ("link",))
    return insert(storage, pending).conversation.id


def decision(target: str, target_id: int, to_status: str, trkref: str = "D10") -> Decision:
    return Decision(trkref, target, target_id, to_status, "moderator", AT, "why", "note")


def test_decisions_move_statuses_log_changes_only_and_stay_in_their_organisation(
    storage: Storage,
) -> None:
    add_organisation_with_key(storage)
    storage.organisations.add(Organisation("E20", "Rival", "en-GB"))
    conversation = held(storage, "Mine?")
    decide = storage.moderation.decide
    assert asyncio.run(decide(decision("conversation", conversation, PUBLISHED, "E20"))) is None
    assert asyncio.run(decide(decision("answer", 999, PUBLISHED))) is None
    assert read(storage, conversation) is None
    first = asyncio.run(decide(decision("conversation", conversation, PUBLISHED)))
    assert first is not None and first.id > 0 and first.from_status == PENDING
    found = read(storage, conversation)
    assert found is not None and found.status == PUBLISHED
    again = asyncio.run(decide(decision("conversation", conversation, PUBLISHED)))
    assert again is not None and (again.id, again.from_status) == (0, PUBLISHED)
    rejected = asyncio.run(decide(decision("conversation", conversation, REJECTED)))
    assert rejected is not None and rejected.id > first.id
    assert read(storage, conversation) is None
    page = asyncio.run(storage.moderation.decision_page("D10", None, 1))
    assert [d.id for d in page.decisions] == [rejected.id] and page.next_after == (rejected.id,)
    rest = asyncio.run(storage.moderation.decision_page("D10", page.next_after, 10))
    assert [d.id for d in rest.decisions] == [first.id] and rest.next_after is None
    assert asyncio.run(storage.moderation.decision_page("E20", None, 10)).decisions == ()


def test_the_queue_holds_pending_items_oldest_first(storage: Storage) -> None:
    add_organisation_with_key(storage)
    published = insert(
        storage,
        PendingCreate(NewConversation("D10", "A", "Q?", "S1"), ORGANISATION, AT, CALLER.key_id),
    ).conversation.id
    later = held(storage, "Later?", AT + datetime.timedelta(seconds=2))
    earlier = held(storage, "Earlier?", AT)
    new = NewAnswer("D10", published, "See www.example.com", "Bo")
    pending = PendingAnswer(
        new, AT + datetime.timedelta(seconds=1), CALLER.key_id, None, PENDING, ("link",)
    )
    stored = asyncio.run(storage.insert_answer(pending))
    assert stored is not None and stored.answer.status == PENDING
    queue = storage.moderation.queue_page
    first = asyncio.run(queue("D10", None, 2))
    assert [(i.target, (i.answer or i.conversation).id) for i in first.items] == [
        ("conversation", earlier),
        ("answer", stored.answer.id),
    ]
    assert first.items[1].conversation.id == published
    assert all(i.held_for == ("link",) for i in first.items)
    second = asyncio.run(queue("D10", first.next_after, 2))
    assert [i.conversation.id for i in second.items] == [later] and second.next_after is None
    conversation = read(storage, published)
    assert conversation is not None and conversation.answers_count == 0


def test_blocked_terms_are_added_removed_and_listed(storage: Storage) -> None:
    add_organisation_with_key(storage)
    terms = storage.moderation
    assert terms.add_terms("D10", ["spam", "buy now"]) == 2
    assert terms.add_terms("D10", ["spam"]) == 0
    assert terms.add_terms("Z99", ["spam"]) is None
    assert terms.list_terms("D10") == ["buy now", "spam"]
    assert asyncio.run(terms.blocked_terms("D10")).find("SPAM!") == ["spam"]
    assert terms.remove_terms("D10", ["spam", "other"]) == 1
    assert asyncio.run(terms.blocked_terms("D10")).find("SPAM!") == []
    assert terms.list_terms("D10") == ["buy now"]
