"""What the use cases need of storage, as a Protocol: the Store meets it, and so do tests' fakes."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Protocol

from server.service.decisions import Decision, DecisionPage, QueuePage, RecordedDecision
from server.service.domain import (
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
from server.service.screening import BlockedTerms, ContactDetails

if TYPE_CHECKING:
    from server.service.reports import ItemReport, ReportOutcome


class ModerationStorage(Protocol):
    """Moderation's units of work (server.storage.moderation_store.Moderation)."""

    @property
    def contacts(self) -> ContactDetails: ...

    async def blocked_terms(self, trkref: str) -> BlockedTerms: ...

    def add_terms(self, trkref: str, terms: list[str]) -> int | None: ...

    def remove_terms(self, trkref: str, terms: list[str]) -> int | None: ...

    def list_terms(self, trkref: str) -> list[str] | None: ...

    async def terms_page(
        self, trkref: str, after: str | None, size: int
    ) -> tuple[list[str], bool]: ...

    async def decide(self, decision: Decision) -> RecordedDecision | None: ...

    async def report(self, report: ItemReport) -> ReportOutcome | None: ...

    async def queue_page(self, trkref: str, after: PageKey | None, size: int) -> QueuePage: ...

    async def decision_page(
        self, trkref: str, after: PageKey | None, size: int
    ) -> DecisionPage: ...


class OrganisationStorage(Protocol):
    """The organisations' units of work (server.storage.organisations_store.Organisations)."""

    def add(self, organisation: Organisation) -> None: ...

    def add_first(self, organisation: Organisation) -> bool: ...

    def list_all(self) -> list[Organisation]: ...

    async def known(self, trkref: str) -> Organisation | None: ...


class ApiKeyStorage(Protocol):
    """The API keys' units of work (server.storage.api_keys_store.ApiKeys)."""

    def add(self, key: ApiKey) -> None: ...

    def find(self, key_id: str) -> ApiKey | None: ...

    def list_all(self) -> list[ApiKey]: ...

    def revoke(self, key_id: str, at: datetime.datetime) -> bool: ...

    def active(self, key_ids: frozenset[str]) -> set[str]:
        """Which of these keys exist and are not revoked."""
        ...

    def replace_secret_hash(self, key_id: str, old: str, new: str) -> bool: ...

    def digest_key(self) -> bytes: ...


class Storage(Protocol):
    """Each method is one unit of work; database failures arrive as domain errors."""

    @property
    def moderation(self) -> ModerationStorage: ...

    @property
    def api_keys(self) -> ApiKeyStorage: ...

    @property
    def organisations(self) -> OrganisationStorage: ...

    async def insert_conversation(self, pending: PendingCreate) -> StoredCreate: ...

    async def read_conversation(
        self, conversation_id: int, answers: int, trkref: str | None = None, role: str = SHOPPER
    ) -> Conversation | None:
        """A conversation with its `answers` oldest answers, as `role` sees them (a shopper:
        published ones only; a moderator: every status, with why each is held); None when
        there is none, or, with `trkref`, when it is not that organisation's."""
        ...

    async def read_answers(self, query: AnswerQuery) -> AnswerPage | None:
        """A page of a conversation's answers, as `query.role` sees them; None when the
        conversation is not one of `query.trkref`'s (or, for a shopper, not published)."""
        ...

    async def read_page(self, query: PageQuery) -> ConversationPage: ...

    async def page_token_secret(self) -> bytes: ...

    async def conversation_stamp(
        self, trkref: str, conversation_id: int, role: str = SHOPPER
    ) -> Stamp | None:
        """The stamp of a conversation's product, read alone (no conversation or answer
        rows); None when the conversation is not one of `trkref`'s (or, for a shopper, not
        published)."""
        ...

    async def product_stamp(self, trkref: str, sku: str, locale: str | None) -> Stamp:
        """The stamp of a product, in one locale or all, read alone."""
        ...

    async def insert_answer(self, pending: PendingAnswer) -> StoredAnswer | None:
        """Store an answer; None when its conversation is not one of its organisation's."""
        ...

    async def record_vote(self, vote: Vote) -> bool:
        """Count a vote (once per voter_id and target); False when the target is not one of
        its organisation's."""
        ...
