"""A database error the service does not expect answers the documented internal error on the
authentication path as on every other: INTERNAL `internal error` over gRPC, HTTP 500 and
`{"code":13,"message":"internal error","details":[]}` over REST, the details in the log only."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import psycopg2
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.databases import fresh_postgres
from harness.support import basic_authorization
from tests.e2e.service import ServiceProcess, call

INTERNAL_ERROR_JSON = b'{"code":13,"message":"internal error","details":[]}'


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service on PostgreSQL, its api_key table changed under it by an operator's SQL:
    reading a key the process has not seen fails with an error of the query, not of the
    database's availability."""
    workdir = tmp_path_factory.mktemp("internal_errors")
    with (
        fresh_postgres("internal_errors") as url,
        ServiceProcess(workdir, ["--database-url", url], rest=True, demo=True) as service,
    ):
        connection = psycopg2.connect(url, connect_timeout=5)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("ALTER TABLE api_key RENAME COLUMN role TO role_moved")
        finally:
            connection.close()
        yield service


def test_an_unexpected_database_error_while_authenticating_is_internal_over_rest(
    broken: ServiceProcess,
) -> None:
    unseen = basic_authorization("unseen-rest", "its-secret")

    response = call(broken, "GET", "/v4/conversations/1?trkref=D10", authorization=unseen)

    assert (response.status, response.body) == (500, INTERNAL_ERROR_JSON)
    assert response.headers["content-type"] == "application/json"
    broken.wait_for_log(r"authentication failed: database error: ProgrammingError")


def test_an_unexpected_database_error_while_authenticating_is_internal_over_grpc(
    broken: ServiceProcess,
) -> None:
    unseen = basic_authorization("unseen-grpc", "its-secret")

    with grpc.insecure_channel(broken.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetConversation(
                pb.GetConversationRequest(trkref="D10", id=1),
                metadata=(("authorization", unseen),),
                timeout=10,
            )

    error: grpc.Call = raised.value  # type: ignore[assignment]
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "internal error")
    assert "grpc-status-details-bin" not in dict(error.trailing_metadata() or ())
