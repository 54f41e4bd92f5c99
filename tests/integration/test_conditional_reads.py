"""Conditional reads over gRPC on a real server and Store (SQLite and PostgreSQL): the
`etag` and `cache-control` initial metadata, an empty message with `x-not-modified` for a
matching `if-none-match`, and such an answer reads the product's stamp, no row of
conversations or answers (the Store keeps nothing here, so every other read hits them)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import Metadata
from server.app import RunningServer
from server.storage.store import Store
from tests.integration.conftest import open_store
from tests.integration.test_reading import statements_of


@pytest.fixture
def store(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """The Store without a read cache: a read of rows runs their statements every time."""
    opened = open_store(database, tmp_path, request, read_cache_mib=0)
    try:
        yield opened
    finally:
        opened.close()


Read = tuple[str, Any]


def reads(conversation_id: int) -> list[Read]:
    """Detail, the product's List, the conversation's answers: method name and request."""
    return [
        ("GetConversation", pb.GetConversationRequest(id=conversation_id, trkref="D10")),
        ("ListConversations", pb.ListConversationsRequest(trkref="D10", sku="P1", page_size=5)),
        ("ListAnswers", pb.ListAnswersRequest(conversation_id=conversation_id, trkref="D10")),
    ]


def seeded(stub: Any, auth: Metadata) -> int:
    """A conversation of D10 about P1 with one answer: its id."""
    created = stub.CreateConversation(
        pb.CreateConversationRequest(trkref="D10", first_name="A", question="Q?", sku="P1"),
        timeout=10,
        metadata=auth,
    )
    answer = pb.NewAnswer(response="Yes.", first_name="Ann")
    stub.CreateAnswer(
        pb.CreateAnswerRequest(trkref="D10", conversation_id=created.id, answer=answer),
        timeout=10,
        metadata=auth,
    )
    return int(created.id)


@contextlib.contextmanager
def seeded_stub(start: Callable[..., RunningServer], auth: Metadata) -> Iterator[tuple[Any, int]]:
    """A stub of a new server, and the id of the conversation `seeded` stored."""
    server = start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        yield stub, seeded(stub, auth)


def called(store: Store, rpc: Any, request: Any, metadata: Metadata) -> tuple[Any, Any, list[str]]:
    """A unary call's response, its call object, and the statements it ran on the store."""
    answered: list[Any] = []
    statements = statements_of(
        store, lambda: answered.append(rpc.with_call(request, timeout=10, metadata=metadata))
    )
    response, call = answered[0]
    return response, call, statements


def rows_read(statements: list[str]) -> list[str]:
    """The statements that read conversations' or answers' columns."""
    return [sql for sql in statements if '"question"' in sql or '"response"' in sql]


def test_a_match_is_an_empty_message_marked_not_modified_that_reads_no_row(
    start: Callable[..., RunningServer], store: Store, auth: Metadata
) -> None:
    with seeded_stub(start, auth) as (stub, conversation_id):
        for method, request in reads(conversation_id):
            rpc = getattr(stub, method)
            response, call, first = called(store, rpc, request, auth)
            metadata = dict(call.initial_metadata())
            assert metadata["cache-control"] == "private, no-cache"
            assert "x-not-modified" not in metadata
            assert response != type(response)() and rows_read(first), method
            tag = metadata["etag"]
            sent = (*auth, ("if-none-match", f'"other", W/{tag}'))
            empty, call, second = called(store, rpc, request, sent)
            metadata = dict(call.initial_metadata())
            assert empty == type(response)(), method
            assert (metadata["etag"], metadata["x-not-modified"]) == (tag, "true")
            assert call.code() is grpc.StatusCode.OK
            assert rows_read(second) == [], second
            assert any("conversation_count" in sql for sql in second), second


def test_another_organisations_conversation_is_not_found_whatever_the_tag(
    start: Callable[..., RunningServer], store: Store, auth: Metadata
) -> None:
    with seeded_stub(start, auth) as (stub, conversation_id):
        sent = (*auth, ("if-none-match", "*"))
        for method, request in reads(conversation_id)[::2]:
            request.trkref = "E20"
            with pytest.raises(grpc.RpcError) as refused:
                getattr(stub, method).with_call(request, timeout=10, metadata=sent)
            assert refused.value.code() is grpc.StatusCode.NOT_FOUND
            assert "etag" not in dict(refused.value.initial_metadata())  # type: ignore[attr-defined]
