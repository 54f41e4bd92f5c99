"""An in-memory Storage for the unit tests of the use cases.

FakeStorage keeps what server.service.ports.Storage promises the way the Store
does, with plain dicts: the same outcomes, the same domain errors.
tests/integration/test_storage_contract.py runs one set of checks against it and
against the Store on SQLite and PostgreSQL, so that it cannot drift from them.

Beyond the port it counts the calls of each method (`calls`), can play a
database that is down (`unavailable`), and reads back what a create stored.
"""

from __future__ import annotations

import collections
import datetime
import re
import unicodedata
from dataclasses import replace

from server.service.domain import (
    ANSWERS_START,
    MODERATOR,
    PUBLISHED,
    SHOPPER,
    AnswerPage,
    AnswerQuery,
    ApiKey,
    Conversation,
    ConversationPage,
    Organisation,
    PageKey,
    PageQuery,
    PendingAnswer,
    PendingCreate,
    Stamp,
    StoredAnswer,
    StoredCreate,
    Vote,
)
from server.service.errors import (
    OrganisationExists,
    OrganisationNotFound,
    StorageFailed,
    StorageUnavailable,
    Unauthenticated,
)
from server.service.ports import Storage
from server.storage.answer_pages import answer_key
from server.storage.listing import page_key
from tests.unit.fake_moderation import FakeModeration


def folded_words(text: str) -> set[str]:
    """The words of a text as a search sees them: case and accents aside."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return set(re.findall(r"[^\W_]+", plain))


def listed(conversation: Conversation, query: PageQuery) -> bool:
    """Whether a List `query` shows `conversation`, by plain Python."""
    chosen = query.filter
    texts = [conversation.question, *(a.response for a in conversation.answers)]
    found = set().union(*(folded_words(text) for text in texts))
    return (
        conversation.trkref == query.trkref
        and query.sku in (None, conversation.sku)
        and query.locale in (None, conversation.locale)
        and chosen.answered in (None, conversation.answers_count > 0)
        and chosen.has_retailer_answer
        in (None, any(a.response_type == "retailer" for a in conversation.answers))
        and (chosen.created_from is None or conversation.created_at >= chosen.created_from)
        and (chosen.created_before is None or conversation.created_at < chosen.created_before)
        and folded_words(query.search) <= found
    )


class FakeStorage:
    """What the use cases need of storage, in memory."""

    def __init__(self) -> None:
        self.by_trkref: dict[str, Organisation] = {}
        self.keys: dict[str, ApiKey] = {}
        self.conversations: dict[int, StoredCreate] = {}
        # (created_by, request_id) -> id of the conversation stored under it
        self._requested: dict[tuple[str, str], int] = {}
        self.answers: dict[int, StoredAnswer] = {}
        # answer id -> id of its conversation
        self._answered: dict[int, int] = {}
        self._requested_answers: dict[tuple[str, str], int] = {}
        # (target, target id, voter_id) of the votes that carried a voter_id
        self._voters: set[tuple[str, int, str]] = set()
        # (trkref, sku, locale) -> writes that changed what the product shows
        self.revisions: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        # True: every call fails as it does on a database that is down.
        self.unavailable = False
        self.moderation = FakeModeration(self)
        self.api_keys = FakeApiKeys(self)
        self.organisations = FakeOrganisations(self)

    def _call(self, method: str) -> None:
        self.calls[method] += 1
        if self.unavailable:
            raise StorageUnavailable("database unavailable: the fake is down")

    # Conversations

    async def insert_conversation(self, pending: PendingCreate) -> StoredCreate:
        self._call("insert_conversation")
        key = self.keys.get(pending.created_by)
        if key is None or key.revoked:
            raise Unauthenticated()
        request_id = pending.new.request_id
        if request_id is not None and (pending.created_by, request_id) in self._requested:
            return self.conversations[self._requested[pending.created_by, request_id]]
        if pending.organisation.trkref not in self.by_trkref:  # its row fails NOT NULL
            raise StorageFailed("database error: IntegrityError")
        stored = StoredCreate(
            _conversation(len(self.conversations) + 1, pending), pending.request_digest
        )
        self.conversations[stored.conversation.id] = stored
        self._revise(stored.conversation.id)
        if request_id is not None:
            self._requested[pending.created_by, request_id] = stored.conversation.id
        return stored

    async def read_conversation(
        self, conversation_id: int, answers: int, trkref: str | None = None, role: str = SHOPPER
    ) -> Conversation | None:
        self._call("read_conversation")
        found = self.get_conversation(conversation_id, answers, role)
        return None if found is None or trkref not in (None, found.trkref) else found

    async def read_answers(self, query: AnswerQuery) -> AnswerPage | None:
        self._call("read_answers")
        conversation = self.get_conversation(query.conversation_id, 0, query.role)
        if conversation is None or conversation.trkref != query.trkref:
            return None
        every = self.get_conversation(
            query.conversation_id, len(self.answers), query.role, query.status
        )
        assert every is not None
        after = [a for a in every.answers if query.after is None or answer_key(a) > query.after]
        page = tuple(after[: query.size])
        more = len(after) > query.size
        return AnswerPage(page, every.answers_count, answer_key(page[-1]) if more else None)

    async def read_page(self, query: PageQuery) -> ConversationPage:
        self._call("read_page")
        # Every published answer: a search matches the words of any of them.
        status = query.filter.status or PUBLISHED
        every = [
            self.get_conversation(i, len(self.answers), MODERATOR, PUBLISHED)
            for i in self.conversations
        ]
        matching = [c for c in every if c is not None and c.status == status and listed(c, query)]
        ascending = query.order.endswith(" asc")

        def key(conversation: Conversation) -> PageKey:
            return page_key(query.order, conversation)

        ordered = sorted(matching, key=key, reverse=not ascending)
        after = query.after
        if after is not None:
            ordered = [c for c in ordered if (key(c) > after if ascending else key(c) < after)]
        page = tuple(c._replace(answers=()) for c in ordered[: query.size])
        page = tuple(
            filter(None, (self.get_conversation(c.id, query.answers, query.role) for c in page))
        )
        more = len(ordered) > query.size
        return ConversationPage(
            page,
            question_count=len(matching),
            answers_count=sum(c.answers_count for c in matching),
            next_after=key(page[-1]) if more else None,
        )

    def _revise(self, conversation_id: int) -> None:
        c = self.conversations[conversation_id].conversation
        self.revisions[c.trkref, c.sku, c.locale] += 1

    async def conversation_stamp(
        self, trkref: str, conversation_id: int, role: str = SHOPPER
    ) -> Stamp | None:
        self._call("conversation_stamp")
        found = self.conversations.get(conversation_id)
        if found is None or found.conversation.trkref != trkref:
            return None
        if role == SHOPPER and found.conversation.status != PUBLISHED:
            return None
        c = found.conversation
        return (0, 0, self.revisions[c.trkref, c.sku, c.locale])

    async def product_stamp(self, trkref: str, sku: str, locale: str | None) -> Stamp:
        self._call("product_stamp")
        revisions = (n for (t, s, loc), n in self.revisions.items()
                     if (t, s) == (trkref, sku) and locale in (None, loc))  # fmt: skip
        return (0, 0, sum(revisions))

    async def page_token_secret(self) -> bytes:
        self._call("page_token_secret")
        return b"the fake's page token secret...."

    def get_conversation(
        self,
        conversation_id: int,
        size: int = 100,
        role: str = SHOPPER,
        status: str | None = None,
    ) -> Conversation | None:
        """A conversation with its answers as `role` reads them: a shopper, a published one
        with its published answers; a moderator, one of any status with its answers of
        every status (of `status`, when given). `answers_count` counts the published ones."""
        stored = self.conversations.get(conversation_id)
        if stored is None or (role == SHOPPER and stored.conversation.status != PUBLISHED):
            return None
        everyone = [
            self.answers[a].answer
            for a, c in sorted(self._answered.items())
            if c == conversation_id
        ]
        shown = PUBLISHED if role == SHOPPER else status
        answers = tuple(sorted((a for a in everyone if shown in (None, a.status)), key=answer_key))
        if role == SHOPPER:
            answers = tuple(a._replace(held_for=()) for a in answers)
        after = None
        if len(answers) > size:
            after = answer_key(answers[size - 1]) if size else ANSWERS_START
        published = sum(1 for a in everyone if a.status == PUBLISHED)
        conversation = stored.conversation._replace(
            answers=answers[:size], answers_count=published, answers_after=after
        )
        return conversation if role == MODERATOR else conversation._replace(held_for=())

    # Answers and votes

    async def insert_answer(self, pending: PendingAnswer) -> StoredAnswer | None:
        self._call("insert_answer")
        new = pending.new
        conversation = self.get_conversation(new.conversation_id)
        if conversation is None or conversation.trkref != new.trkref:
            return None
        key = self.keys.get(pending.created_by)
        if key is None or key.revoked:
            raise Unauthenticated()
        if (
            new.request_id is not None
            and (pending.created_by, new.request_id) in self._requested_answers
        ):
            return self.answers[self._requested_answers[pending.created_by, new.request_id]]
        answer_id = len(self.answers) + 1
        stored = StoredAnswer(pending.stored(answer_id), pending.request_digest)
        self.answers[answer_id] = stored
        self._answered[answer_id] = new.conversation_id
        self._revise(new.conversation_id)
        if new.request_id is not None:
            self._requested_answers[pending.created_by, new.request_id] = answer_id
        return stored

    async def record_vote(self, vote: Vote) -> bool:
        self._call("record_vote")
        key = self.keys.get(vote.voted_by)
        if key is None or key.revoked:
            raise Unauthenticated()
        if vote.target == "conversation":
            found = self.get_conversation(vote.target_id, 0)
            trkref = None if found is None else found.trkref
        else:
            conversation_id = self._answered.get(vote.target_id, 0)
            shown = self.get_conversation(conversation_id, len(self.answers))
            ids = set() if shown is None else {a.id for a in shown.answers}
            trkref = shown.trkref if shown is not None and vote.target_id in ids else None
        if trkref != vote.trkref:
            return False
        if vote.voter_id is not None:
            voter = (vote.target, vote.target_id, vote.voter_id)
            if voter in self._voters:
                return True
            self._voters.add(voter)
        if vote.target == "conversation":
            stored = self.conversations[vote.target_id]
            voted = stored.conversation._replace(
                **{vote.counter: getattr(stored.conversation, vote.counter) + 1}
            )
            self.conversations[vote.target_id] = replace(stored, conversation=voted)
        else:
            answered = self.answers[vote.target_id]
            voted_answer = answered.answer._replace(
                **{vote.counter: getattr(answered.answer, vote.counter) + 1}
            )
            self.answers[vote.target_id] = replace(answered, answer=voted_answer)
        self._revise(
            vote.target_id if vote.target == "conversation" else self._answered[vote.target_id]
        )
        return True

    def count_conversations(self) -> int:
        return len(self.conversations)


def _conversation(conversation_id: int, pending: PendingCreate) -> Conversation:
    """What a create stores: what was asked, for the organisation, with nothing voted yet."""
    new, org = pending.new, pending.organisation
    asked = (new.sku, new.first_name, new.question, new.locale or org.locale)
    at = pending.created_at.astimezone(datetime.UTC)
    # helpful 0, unhelpful 0, not embeddable; then the organisation's locale.
    return Conversation(conversation_id, org.trkref, *asked, at, 0, 0, False, org.locale)._replace(
        status=pending.status, held_for=pending.held_for
    )


# mypy checks that the fake meets the port.
_: type[Storage] = FakeStorage


class FakeApiKeys:
    """The API keys' units of work, over FakeStorage's keys."""

    def __init__(self, storage: FakeStorage) -> None:
        self._storage = storage

    def add(self, key: ApiKey) -> None:
        s = self._storage
        s._call("add_api_key")
        missing = key.organisations - s.by_trkref.keys()
        if missing:
            raise OrganisationNotFound(sorted(missing)[0])
        if key.key_id in s.keys:  # the unique index refuses it
            raise StorageFailed("database error: IntegrityError")
        s.keys[key.key_id] = key

    def find(self, key_id: str) -> ApiKey | None:
        self._storage._call("find_api_key")
        return self._storage.keys.get(key_id)

    def list_all(self) -> list[ApiKey]:
        self._storage._call("list_api_keys")
        return sorted(self._storage.keys.values(), key=lambda key: key.created_at)

    def revoke(self, key_id: str, at: datetime.datetime) -> bool:
        s = self._storage
        s._call("revoke_api_key")
        key = s.keys.get(key_id)
        if key is None or key.revoked:
            return False
        s.keys[key_id] = replace(key, revoked_at=at)
        return True

    def active(self, key_ids: frozenset[str]) -> set[str]:
        s = self._storage
        s._call("active_api_keys")
        return {k for k in key_ids if k in s.keys and not s.keys[k].revoked}

    def replace_secret_hash(self, key_id: str, old: str, new: str) -> bool:
        s = self._storage
        s._call("replace_secret_hash")
        key = s.keys.get(key_id)
        if key is None or key.secret_hash != old:
            return False
        s.keys[key_id] = replace(key, secret_hash=new)
        return True

    def digest_key(self) -> bytes:
        self._storage._call("api_key_digest_key")
        return b"the fake's api key digest key..."


class FakeOrganisations:
    """The organisations' units of work, over FakeStorage's by_trkref."""

    def __init__(self, storage: FakeStorage) -> None:
        self._storage = storage

    def add(self, organisation: Organisation) -> None:
        s = self._storage
        s._call("add_organisation")
        if organisation.trkref in s.by_trkref:
            raise OrganisationExists(organisation.trkref)
        s.by_trkref[organisation.trkref] = organisation

    def add_first(self, organisation: Organisation) -> bool:
        s = self._storage
        s._call("add_first_organisation")
        if s.by_trkref:
            return False
        s.by_trkref[organisation.trkref] = organisation
        return True

    def list_all(self) -> list[Organisation]:
        s = self._storage
        s._call("list_organisations")
        return [s.by_trkref[trkref] for trkref in sorted(s.by_trkref)]

    async def known(self, trkref: str) -> Organisation | None:
        self._storage._call("known_organisation")
        return self._storage.by_trkref.get(trkref)
