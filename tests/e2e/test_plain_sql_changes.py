"""Two replicas on one database (two `serve` processes on one SQLite file, or on one
PostgreSQL) keep what they read; a change made in plain SQL, as an operator makes it,
shows through both at once: the database moves the product's stamp (migration 0015)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import grpc
import psycopg2
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import basic_authorization, organisation_with_key
from server.storage.database import sqlite_path
from tests.e2e.service import ServiceProcess

CHANGED = "Does it fit a 2019 model?"


def plain_sql(database_url: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Statements sent as an operator sends them: a connection of its own, no service code,
    one commit (`%s` for each parameter)."""
    path = sqlite_path(database_url)
    if path is not None:
        with closing(sqlite3.connect(path)) as connection, connection:
            for sql, params in statements:
                connection.execute(sql.replace("%s", "?"), params)
        return
    with (
        closing(psycopg2.connect(database_url)) as connection,
        connection,
        connection.cursor() as cursor,
    ):
        for sql, params in statements:
            cursor.execute(sql, params)


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[list[pb_grpc.ConversationServiceStub]]:
    """Two `serve` processes on the database, each reached on its own port."""
    args = ["--database-url", database_url]
    with ExitStack() as stack:
        # One after the other: the first migrates the database.
        served = [stack.enter_context(ServiceProcess(tmp_path, args)) for _ in range(2)]
        channels = [stack.enter_context(grpc.insecure_channel(s.address)) for s in served]
        yield [pb_grpc.ConversationServiceStub(channel) for channel in channels]


def test_a_change_in_plain_sql_shows_through_both_replicas_at_once(
    database_url: str, replicas: list[pb_grpc.ConversationServiceStub]
) -> None:
    metadata = (("authorization", basic_authorization(*organisation_with_key(database_url))),)

    def created(question: str) -> pb.Conversation:
        request = pb.CreateConversationRequest(
            trkref="D10", first_name="A", question=question, sku="S"
        )
        found: pb.Conversation = replicas[0].CreateConversation(
            request, metadata=metadata, timeout=10
        )
        return found

    def detail(replica: pb_grpc.ConversationServiceStub, conversation_id: int) -> pb.Conversation:
        request = pb.GetConversationRequest(id=conversation_id, trkref="D10")
        found: pb.Conversation = replica.GetConversation(request, metadata=metadata, timeout=10)
        return found

    def listed(replica: pb_grpc.ConversationServiceStub) -> pb.ListConversationsResponse:
        request = pb.ListConversationsRequest(trkref="D10", sku="S")
        found: pb.ListConversationsResponse = replica.ListConversations(
            request, metadata=metadata, timeout=10
        )
        return found

    kept, deleted = created("Does it fit?"), created("Is it blue?")
    for replica in replicas:  # twice each: the second from each replica's read cache
        for _ in range(2):
            assert detail(replica, kept.id).question == "Does it fit?"
            assert [c.id for c in listed(replica).conversations] == [deleted.id, kept.id]
    plain_sql(
        database_url,
        ("UPDATE conversation SET question = %s WHERE id = %s", (CHANGED, kept.id)),
        ("DELETE FROM conversation WHERE id = %s", (deleted.id,)),
        (
            "INSERT INTO answer (conversation_id, response, created_at, first_name, town,"
            " reviewer_segment, helpful, unhelpful, review_url, review_locale, response_type)"
            " VALUES (%s, %s, '2026-01-01 00:00:00', 'An owner', '', '', 0, 0, '', '', 'owner')",
            (kept.id, "Yes, every model since 2017."),
        ),
    )
    for replica in replicas:
        shown = detail(replica, kept.id)
        assert shown.question == CHANGED
        assert [a.response for a in shown.answers] == ["Yes, every model since 2017."]
        page = listed(replica)
        assert [(c.id, c.question) for c in page.conversations] == [(kept.id, CHANGED)]
        assert [a.response for a in page.conversations[0].answers] == [
            "Yes, every model since 2017."
        ]
        assert page.summary.question_count == 1
        with pytest.raises(grpc.RpcError) as missing:
            detail(replica, deleted.id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
