"""A moderator's reads on SQLite and PostgreSQL: Detail, List and ListAnswers of every
status, ListAnswers' status filter, and a shopper's reads untouched by them, through the
read cache, page tokens and entity tags alike."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from harness.support import CALLER, answer, create, store_key
from server.service import conditional, moderation
from server.service.answer_pages import ListAnswersRequest, list_answers
from server.service.conversations import ListRequest, get_conversation, list_conversations
from server.service.domain import (
    PENDING,
    PUBLISHED,
    REJECTED,
    Caller,
    Conversation,
    NewAnswer,
    NewConversation,
    Organisation,
)
from server.service.errors import (
    ConversationNotFound,
    InvalidRequest,
    PermissionDenied,
)
from server.service.moderation import DecisionRequest
from server.service.organisations import add_organisation
from server.storage.store import Store


@dataclass(frozen=True)
class Seeded:
    """D10's keys, a published conversation with a published, a pending and a rejected
    answer (oldest first), and a pending conversation."""

    moderator: Caller
    conversation: int
    answers: tuple[int, int, int]
    pending: int


def decide(store: Store, caller: Caller, target: str, target_id: int, verdict: str) -> None:
    asked = DecisionRequest("D10", target, target_id, verdict, reason="r", note="n")
    asyncio.run(moderation.decide(store, asked, caller))


@pytest.fixture
def seeded(store: Store, organisation: Organisation) -> Seeded:
    boss = store_key(store, "moderator-key", "D10", role="moderator")
    store.moderation.add_terms("D10", ["held"])
    conversation = create(store, NewConversation("D10", "Ann", "Quiet?", "S1"), CALLER).id
    published = answer(store, NewAnswer("D10", conversation, "Yes", "Bo"), CALLER).id
    pending = answer(store, NewAnswer("D10", conversation, "Mail me@example.com", "Cy"), CALLER)
    rejected = answer(store, NewAnswer("D10", conversation, "held", "Di"), CALLER).id
    decide(store, boss, "answer", rejected, "reject")
    held = create(store, NewConversation("D10", "Ed", "held?", "S1"), CALLER).id
    return Seeded(boss, conversation, (published, pending.id, rejected), held)


def detail(store: Store, conversation_id: int, caller: Caller) -> Conversation:
    return asyncio.run(get_conversation(store, "D10", conversation_id, caller))


def answers_of(store: Store, conversation_id: int, caller: Caller, filter: str = "") -> Any:
    asked = ListAnswersRequest("D10", conversation_id, filter=filter)
    return asyncio.run(list_answers(store, asked, caller))


def shown(answers: Sequence[Any]) -> list[tuple[int, str, tuple[str, ...]]]:
    return [(a.id, a.status, a.held_for) for a in answers]


def test_a_moderators_detail_shows_every_status_and_a_shoppers_the_published_only(
    store: Store, seeded: Seeded
) -> None:
    published, pending, rejected = seeded.answers
    everything = [
        (published, PUBLISHED, ()),
        (pending, PENDING, ("email_address",)),
        (rejected, REJECTED, ("blocked_term",)),
    ]
    for _ in range(2):  # read, then from the read cache
        found = detail(store, seeded.conversation, seeded.moderator)
        assert shown(found.answers) == everything
        assert found.answers_count == 1  # counts are of published items
        held = detail(store, seeded.pending, seeded.moderator)
        assert (held.status, held.held_for, held.answers) == (PENDING, ("blocked_term",), ())
        assert shown(detail(store, seeded.conversation, CALLER).answers) == [everything[0]]
        with pytest.raises(ConversationNotFound):
            detail(store, seeded.pending, CALLER)


def test_list_answers_of_a_moderator_takes_a_status_filter(store: Store, seeded: Seeded) -> None:
    published, pending, rejected = seeded.answers
    boss, conversation = seeded.moderator, seeded.conversation
    page, token = answers_of(store, conversation, boss)
    assert [a.id for a in page.answers] == [published, pending, rejected] and token == ""
    assert page.answers_count == 1
    for status, expected in [("PENDING", pending), ('"REJECTED"', rejected),
                             ("PUBLISHED", published)]:  # fmt: skip
        page, _ = answers_of(store, conversation, boss, f"status = {status}")
        assert [a.id for a in page.answers] == [expected]
    assert answers_of(store, seeded.pending, boss)[0].answers == ()
    assert [a.id for a in answers_of(store, conversation, CALLER)[0].answers] == [published]
    with pytest.raises(PermissionDenied):
        answers_of(store, conversation, CALLER, "status = PUBLISHED")
    with pytest.raises(ConversationNotFound):
        answers_of(store, seeded.pending, CALLER)


def test_a_moderators_list_embeds_answers_of_every_status_and_counts_published_ones(
    store: Store, seeded: Seeded
) -> None:
    asked = ListRequest("D10", "S1", page_size=10)
    for caller, statuses in [(seeded.moderator, [PUBLISHED, PENDING, REJECTED]),
                             (CALLER, [PUBLISHED])] * 2:  # fmt: skip
        page, _ = asyncio.run(list_conversations(store, asked, caller))
        [listed] = page.conversations  # the published conversation only, whoever asks
        assert [a.status for a in listed.answers] == statuses
        assert (page.question_count, page.answers_count, listed.answers_count) == (1, 1, 1)
    held = ListRequest("D10", "S1", filter="status = PENDING")
    page, _ = asyncio.run(list_conversations(store, held, seeded.moderator))
    assert [(c.id, c.held_for) for c in page.conversations] == [(seeded.pending, ("blocked_term",))]


def test_another_organisations_moderator_gets_the_not_found_of_a_missing_id(
    store: Store, seeded: Seeded
) -> None:
    add_organisation(store, Organisation("E20", "Rival", "en-GB"))
    rival = store_key(store, "rival-moderator", "E20", role="moderator")
    messages = set()
    for caller, trkref, conversation_id in [
        (seeded.moderator, "D10", 999_999),  # no such id
        (rival, "D10", seeded.pending),  # out of the key's reach
        (rival, "E20", seeded.pending),  # asked of the other organisation
        (rival, "E20", seeded.conversation),
    ]:
        reads = [
            get_conversation(store, trkref, conversation_id, caller),
            list_answers(store, ListAnswersRequest(trkref, conversation_id), caller),
            conditional.get_conversation(store, trkref, conversation_id, caller, ["*"]),
        ]
        for read in reads:
            with pytest.raises(ConversationNotFound) as raised:
                asyncio.run(read)
            messages.add(str(raised.value))
    assert len(messages) == 1, messages


def test_a_shoppers_if_none_match_star_on_a_pending_id_is_not_found(
    store: Store, seeded: Seeded
) -> None:
    for conversation_id in (seeded.pending, 999_999):
        for read in [
            conditional.get_conversation(store, "D10", conversation_id, CALLER, ["*"]),
            conditional.list_answers(
                store, ListAnswersRequest("D10", conversation_id), CALLER, ["*"]
            ),
        ]:
            with pytest.raises(ConversationNotFound):
                asyncio.run(read)
    found = conditional.get_conversation(store, "D10", seeded.pending, seeded.moderator, ["*"])
    assert asyncio.run(found).value is None  # the moderator's copy is current


def test_tags_and_kept_reads_are_the_roles_own(store: Store, seeded: Seeded) -> None:
    boss, conversation = seeded.moderator, seeded.conversation
    # Each role reads twice, in both orders: neither is served what the other read.
    for callers in [(boss, CALLER), (CALLER, boss)]:
        tags: dict[str, str] = {}
        for caller in callers * 2:
            read = conditional.get_conversation(store, "D10", conversation, caller, [])
            found = asyncio.run(read)
            assert found.value is not None and found.tag is not None
            assert len(found.value.answers) == (3 if caller is boss else 1)
            assert tags.setdefault(caller.role, found.tag) == found.tag
        assert tags[boss.role] != tags[CALLER.role]
        for caller, other in [(boss, CALLER), (CALLER, boss)]:
            read = conditional.get_conversation(
                store, "D10", conversation, caller, [tags[other.role]]
            )
            assert asyncio.run(read).value is not None  # the other role's tag: a full read


def test_a_moderators_kept_reads_follow_pending_answers_and_their_decisions(
    store: Store, seeded: Seeded
) -> None:
    boss, conversation = seeded.moderator, seeded.conversation
    tag = asyncio.run(conditional.get_conversation(store, "D10", conversation, boss, [])).tag
    assert tag is not None
    late = answer(store, NewAnswer("D10", conversation, "Call +44 20 7946 0958", "Fi"), CALLER)
    assert late.status == PENDING
    found = asyncio.run(conditional.get_conversation(store, "D10", conversation, boss, [tag]))
    assert found.value is not None and found.value.answers[-1].id == late.id
    page, _ = answers_of(store, conversation, boss, "status = PENDING")
    assert [a.id for a in page.answers] == [seeded.answers[1], late.id]
    decide(store, boss, "answer", late.id, "reject")  # pending to rejected: still unpublished
    assert detail(store, conversation, boss).answers[-1].status == REJECTED
    page, _ = answers_of(store, conversation, boss, "status = PENDING")
    assert [a.id for a in page.answers] == [seeded.answers[1]]
    assert shown(detail(store, conversation, CALLER).answers) == [
        (seeded.answers[0], PUBLISHED, ())
    ]


def test_page_tokens_are_bound_to_the_role(store: Store, seeded: Seeded) -> None:
    boss, conversation = seeded.moderator, seeded.conversation
    also = answer(store, NewAnswer("D10", conversation, "Also yes", "Gus"), CALLER).id
    asked = ListRequest("D10", "S1", answers_page_size=1)
    tokens: dict[str, str] = {}
    for caller, after in [(boss, [*seeded.answers[1:], also]), (CALLER, [also])]:
        page, _ = asyncio.run(list_conversations(store, asked, caller))
        [listed] = page.conversations
        tokens[caller.role] = listed.answers_next_page_token
        rest = ListAnswersRequest("D10", conversation, page_token=tokens[caller.role])
        following, _ = asyncio.run(list_answers(store, rest, caller))
        assert [a.id for a in following.answers] == after
    for caller, other in [(boss, CALLER), (CALLER, boss)]:
        forged = ListAnswersRequest("D10", conversation, page_token=tokens[other.role])
        with pytest.raises(InvalidRequest):
            asyncio.run(list_answers(store, forged, caller))
    chosen = "status = PUBLISHED"
    first = ListAnswersRequest("D10", conversation, page_size=1, filter=chosen)
    _, token = asyncio.run(list_answers(store, first, boss))
    second = ListAnswersRequest("D10", conversation, page_token=token, filter=chosen)
    assert [a.id for a in asyncio.run(list_answers(store, second, boss))[0].answers] == [also]
    for changed in ("", "status = PENDING"):  # a token is bound to its filter too
        unfiltered = ListAnswersRequest("D10", conversation, page_token=token, filter=changed)
        with pytest.raises(InvalidRequest):
            asyncio.run(list_answers(store, unfiltered, boss))
