"""What tests and the bench share: credentials, organisations and keys, creating, reading back.

In-process helpers take a `Storage` (a Store, or the unit tests' fake); the ones for a
database another process serves take its URL and go through the command line or a
Store of their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from server.service import answers, conversations, votes
from server.service.authentication import digest_secret
from server.service.domain import (
    Answer,
    ApiKey,
    Caller,
    Conversation,
    NewAnswer,
    NewConversation,
    Organisation,
    PendingCreate,
    StoredCreate,
)
from server.service.organisations import add_organisation
from server.service.ports import Storage
from server.storage.conversations import answer_from_row, conversation_from_row
from server.storage.models import AnswerRow, ConversationRow
from server.storage.store import Store

# gRPC metadata, as the stubs take it.
Metadata = tuple[tuple[str, str], ...]

ORGANISATION = Organisation(trkref="D10", name="Demo retailer", locale="en-GB")
# A caller whose key reaches D10 only.
CALLER = Caller(key_id="test-key", organisations=frozenset({"D10"}))
# A question for D10, valid and plain, that the tests create again and again.
NEW_CONVERSATION = NewConversation(trkref="D10", first_name="Ann", question="Fits?", sku="S1")

# The installed command, beside this interpreter.
SERVICE = str(Path(sys.executable).parent / "conversation-service")


# Credentials


def basic_authorization(key_id: str, secret: str) -> str:
    """The value of an HTTP Basic `authorization` header (REST) or metadata (gRPC)."""
    return "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()


def basic(key_id: str, secret: str) -> Metadata:
    """gRPC metadata carrying these credentials."""
    return (("authorization", basic_authorization(key_id, secret)),)


# Organisations and keys, in-process

# The secret of every key the tests store directly.
TEST_SECRET = "test-secret"


def legacy_scrypt_hash(secret: str, salt: bytes = b"sixteen byte slt") -> str:
    """A hash as keys issued before digests hold it: scrypt$N$r$p$salt$hash."""
    n, r, p = 2**14, 8, 1
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"scrypt${n}${r}${p}${encoded[0]}${encoded[1]}"


def store_key(
    store: Storage, key_id: str, *trkrefs: str, secret_hash: str = "", role: str = "shopper"
) -> Caller:
    """An active API key for these stored organisations (secret: TEST_SECRET, stored as its
    digest unless `secret_hash` is given), of a shopper unless told; its caller."""
    store.api_keys.add(
        ApiKey(
            key_id=key_id,
            organisations=frozenset(trkrefs),
            created_at=datetime.datetime.now(datetime.UTC),
            revoked_at=None,
            secret_hash=secret_hash or digest_secret(store.api_keys.digest_key(), TEST_SECRET),
            role=role,
        )
    )
    return Caller(key_id=key_id, organisations=frozenset(trkrefs), role=role)


def add_organisation_with_key(store: Storage) -> Organisation:
    """ORGANISATION, stored, with CALLER's key."""
    added = add_organisation(store, ORGANISATION)
    store_key(store, CALLER.key_id, added.trkref)
    return added


# Organisations and keys, through the command line


def cli(database_url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one `conversation-service` command to completion (bounded to 60 s)."""
    return subprocess.run(
        [SERVICE, *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def create_key(database_url: str, *trkrefs: str, role: str = "shopper") -> tuple[str, str]:
    """A new API key for these organisations, through `keys create`: (key id, secret)."""
    flags = [arg for trkref in trkrefs for arg in ("--organisation", trkref)]
    flags += ["--role", role]
    created = cli(database_url, "keys", "create", *flags)
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(": ", 1) for line in created.stdout.splitlines()[:2])
    return fields["key id"], fields["secret"]


def organisation_with_key(database_url: str) -> tuple[str, str]:
    """ORGANISATION added through the command line (which migrates first), post-moderated
    as the demo organisation is, and a new key for it: (key id, secret)."""
    org = ORGANISATION
    added = cli(
        database_url,
        *("organisations", "add", org.trkref, "--name", org.name, "--locale", org.locale),
        *("--moderation", "post"),
    )
    assert added.returncode == 0, added.stderr
    return create_key(database_url, org.trkref)


# Creating in-process


def create(
    store: Storage,
    new: NewConversation,
    caller: Caller,
    clock: conversations.Clock = conversations.utc_now,
) -> Conversation:
    """create_conversation run to completion on an event loop of this thread's own."""
    return asyncio.run(conversations.create_conversation(store, new, caller, clock))


def answer(
    store: Storage,
    new: NewAnswer,
    caller: Caller,
    clock: conversations.Clock = conversations.utc_now,
) -> Answer:
    """create_answer run to completion on an event loop of this thread's own."""
    return asyncio.run(answers.create_answer(store, new, caller, clock))


def vote(store: Storage, caller: Caller, **asked: object) -> None:
    """votes.vote run to completion on an event loop of this thread's own."""
    asyncio.run(votes.vote(store, caller, **asked))  # type: ignore[arg-type]


def insert(store: Storage, pending: PendingCreate) -> StoredCreate:
    """store.insert_conversation run to completion on an event loop of this thread's own."""
    return asyncio.run(store.insert_conversation(pending))


# Reading a database another process serves


@contextlib.contextmanager
def opened_store(database_url: str) -> Iterator[Store]:
    """A Store of this test process on a migrated database, closed after."""
    store = Store.open(database_url)
    try:
        yield store
    finally:
        store.close()


def stored_conversation(database_url: str, conversation_id: int) -> Conversation | None:
    """The conversation stored under an id, whatever its status (a held create is stored
    too), without its answers."""
    with opened_store(database_url) as store, store.reading():
        row = ConversationRow.get_or_none(ConversationRow.id == conversation_id)
        if row is None:
            return None
        conversation = conversation_from_row(row, row.organisation.trkref, answers=())
        return conversation._replace(status=row.status)


def stored_answers(database_url: str, conversation_id: int) -> list[Answer]:
    """The answers stored to a conversation, oldest first, whatever their status."""
    with opened_store(database_url) as store, store.reading():
        rows = AnswerRow.select().where(AnswerRow.conversation == conversation_id)
        ordered = rows.order_by(AnswerRow.created_at, AnswerRow.id)
        return [answer_from_row(row)._replace(status=row.status) for row in ordered]


def stored_count(database_url: str) -> int:
    with opened_store(database_url) as store:
        return store.count_conversations()


def stored_questions(database_url: str, prefix: str = "load ") -> dict[str, list[int]]:
    """The stored questions that start with `prefix`, each with the ids of the rows holding it."""
    with opened_store(database_url) as store, store.reading():
        rows = ConversationRow.select(ConversationRow.id, ConversationRow.question).where(
            ConversationRow.question.startswith(prefix)
        )
        stored: dict[str, list[int]] = {}
        for row in rows:
            stored.setdefault(row.question, []).append(row.id)
    return stored
