"""Blocked terms on SQLite and PostgreSQL: the use cases over the Store, the order of their
pages, replicas screening with a change from their next create on, migration 0014, and the
three methods over gRPC on the real server in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from playhouse.migrations import Runner

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import CALLER, Metadata, add_organisation_with_key, basic, create, store_key
from server.app import RunningServer
from server.package_data import MIGRATIONS
from server.service import api_keys, blocked_terms
from server.service.domain import PENDING, PUBLISHED, Caller, NewConversation, Organisation
from server.service.errors import BlockedTermExists, BlockedTermNotFound
from server.service.ports import Storage
from server.storage.store import Store

MODERATOR = Caller("moderator-key", frozenset({"D10"}), role="moderator")
MIGRATION = "0014_folded_blocked_terms"
LATER = ["0015_revisions_by_triggers"]


def moderator(storage: Storage) -> Caller:
    return store_key(storage, MODERATOR.key_id, "D10", role="moderator")


def add(storage: Storage, term: str) -> str:
    return asyncio.run(blocked_terms.create_blocked_term(storage, "D10", term, MODERATOR))


def remove(storage: Storage, term: str) -> None:
    asyncio.run(blocked_terms.delete_blocked_term(storage, "D10", term, MODERATOR))


def listed(storage: Storage, size: int) -> list[str]:
    """Every term, read `size` at a time through the page tokens."""
    found: list[str] = []
    token = None
    while token != "":
        page, token = asyncio.run(
            blocked_terms.read_blocked_terms(storage, "D10", size, token or "", MODERATOR)
        )
        found += page
    return found


def test_terms_are_stored_folded_once_and_read_in_code_point_order(storage: Storage) -> None:
    add_organisation_with_key(storage)
    moderator(storage)
    # "a c" before "ab" by code point; a locale's collation, ignoring spaces, puts it after.
    for term in ("zebra", "ab", "A-C", "ω", "10", "日本", "Apple"):
        add(storage, term)
    ordered = ["10", "a c", "ab", "apple", "zebra", "ω", "日本"]
    assert listed(storage, 2) == listed(storage, 100) == ordered
    assert storage.moderation.list_terms("D10") == ordered
    with pytest.raises(BlockedTermExists):
        add(storage, "ZÉBRA")
    remove(storage, "Zebra!")
    with pytest.raises(BlockedTermNotFound):
        remove(storage, "zebra")
    assert listed(storage, 3) == [term for term in ordered if term != "zebra"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_the_order_is_by_code_point_whatever_the_column_s_collation(
    store: Store, organisation: Organisation
) -> None:
    """A database whose collation follows a language ("en" puts "ŋ" before "o") still pages
    the terms by code point."""
    with store.session():
        store.db.execute_sql(  # type: ignore[no-untyped-call]
            'ALTER TABLE blocked_term ALTER COLUMN term TYPE varchar(200) COLLATE "en-x-icu"'
        )
    moderator(store)
    for term in ("o", "\u014b", "b", "\u00e6"):
        add(store, term)
    ordered = ["b", "o", "\u00e6", "\u014b"]
    assert listed(store, 1) == listed(store, 10) == ordered
    assert store.moderation.list_terms("D10") == ordered


def test_a_change_holds_the_next_create(store: Store, organisation: Organisation) -> None:
    """The terms compiled for a create are read again once the terms revision moves, as
    another replica's change moves it."""
    moderator(store)
    question = NewConversation("D10", "Ann", "Is it spam?", "S1")
    assert create(store, question, CALLER).status == PUBLISHED
    assert add(store, "SPAM") == "spam"
    held = create(store, question, CALLER)
    assert (held.status, held.held_for) == (PENDING, ("blocked_term",))
    remove(store, "spam")
    kept = create(store, question, CALLER)
    assert (kept.status, kept.held_for) == (PUBLISHED, ())
    assert blocked_terms.change_blocked_terms(store, "D10", ["Spam!"], add=True) == 1
    assert create(store, question, CALLER).status == PENDING


def test_the_migration_folds_the_terms_stored_before(
    store: Store, organisation: Organisation
) -> None:
    runner = Runner(store.db, str(MIGRATIONS))
    with store.reading():
        assert runner.down(MIGRATION) == [*reversed(LATER), MIGRATION]
    with store.session():
        for term in ("Spam", "spam", "Buy-Now!", "!!!", "plain"):
            store.db.execute_sql(  # type: ignore[no-untyped-call]
                "INSERT INTO blocked_term (organisation_id, term) SELECT id, "
                f"{store.db.param} FROM organisation WHERE trkref = 'D10'",
                (term,),
            )
    before = store.moderation.list_terms("D10")
    assert before is not None and len(before) == 5
    revision = terms_revision(store)
    with store.reading():
        assert runner.up() == [MIGRATION, *LATER]
    assert store.moderation.list_terms("D10") == ["buy now", "plain", "spam"]
    assert terms_revision(store) == revision + 1


def terms_revision(store: Store) -> int:
    with store.reading():
        cursor = store.db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT terms_revision FROM organisation WHERE trkref = 'D10'"
        )
        return int(cursor.fetchone()[0])


# Over gRPC, on the real server in-process


@pytest.fixture
def keys(store: Store, organisation: Organisation) -> dict[str, Metadata]:
    store.organisations.add(Organisation("E20", "Rival", "en-GB"))
    issued = {
        "moderator": api_keys.create_key(store, ["D10"], role="moderator"),
        "shopper": api_keys.create_key(store, ["D10"]),
        "rival": api_keys.create_key(store, ["E20"], role="moderator"),
    }
    return {name: basic(key.key_id, key.secret) for name, key in issued.items()}


def calling(server: RunningServer, metadata: Metadata) -> Callable[[str, Any], Any]:
    """Call a method of the server with these credentials: its response, or the error."""

    def call(method: str, request: Any) -> Any:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ConversationServiceStub(channel)
            try:
                return getattr(stub, method)(request, timeout=10, metadata=metadata)
            except grpc.RpcError as error:
                return error

    return call


def test_the_methods_over_grpc(
    start: Callable[..., RunningServer], keys: dict[str, Metadata]
) -> None:
    server = start()
    call = calling(server, keys["moderator"])
    new = pb.CreateBlockedTermRequest(trkref="D10", blocked_term=pb.NewBlockedTerm(term="Buy-NOW!"))
    assert call("CreateBlockedTerm", new) == pb.BlockedTerm(term="buy now")
    exists = call("CreateBlockedTerm", new)
    assert (exists.code(), exists.details()) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "the blocked term 'buy now' already exists",
    )
    listed = call("ListBlockedTerms", pb.ListBlockedTermsRequest(trkref="D10"))
    assert listed == pb.ListBlockedTermsResponse(blocked_terms=[pb.BlockedTerm(term="buy now")])
    gone = pb.DeleteBlockedTermRequest(trkref="D10", term="buy now")
    assert call("DeleteBlockedTerm", gone) is not None
    missing = call("DeleteBlockedTerm", gone)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bad = call("CreateBlockedTerm", pb.CreateBlockedTermRequest(
        trkref="D10", blocked_term=pb.NewBlockedTerm(term="a\u202eb")))  # fmt: skip
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(bad)
    assert status is not None
    details = error_details_pb2.BadRequest()
    status.details[0].Unpack(details)
    assert [(v.field, v.reason) for v in details.field_violations] == [
        ("blocked_term.term", "BIDI_CONTROL")
    ]


def test_roles_and_other_organisations_over_grpc(
    start: Callable[..., RunningServer], keys: dict[str, Metadata]
) -> None:
    server = start()
    requests: list[tuple[str, Callable[[str], Any]]] = [
        ("ListBlockedTerms", lambda trkref: pb.ListBlockedTermsRequest(trkref=trkref)),
        ("CreateBlockedTerm", lambda trkref: pb.CreateBlockedTermRequest(
            trkref=trkref, blocked_term=pb.NewBlockedTerm(term="spam"))),
        ("DeleteBlockedTerm", lambda trkref: pb.DeleteBlockedTermRequest(
            trkref=trkref, term="spam")),
    ]  # fmt: skip
    for method, request in requests:
        denied = calling(server, keys["shopper"])(method, request("E20"))
        assert (denied.code(), denied.details()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "this method needs a moderator key",
        )
        for trkref, who in (("D10", "rival"), ("E20", "moderator"), ("Z99", "moderator")):
            hidden = calling(server, keys[who])(method, request(trkref))
            assert (hidden.code(), hidden.details()) == (
                grpc.StatusCode.NOT_FOUND,
                f"organisation '{trkref}' does not exist or you are not authorised to access it",
            )
