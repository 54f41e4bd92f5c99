"""The servicer in-process, driven by grpcio-testing: messages and statuses."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import grpc
import grpc_testing
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from harness.databases import write_lock_held
from harness.support import CALLER
from server.api.servicer import ConversationService
from server.service.domain import Organisation
from server.storage.store import Store

METHOD = pb.DESCRIPTOR.services_by_name["ConversationService"].methods_by_name["CreateConversation"]
SEED = pb.CreateConversationRequest(
    trkref="D10",
    first_name="A shopper",
    question="How is this product?",
    locale="en-GB",
    sku="AIPTPDV5700",
)


class BlockingServicer:
    """The servicer's coroutine methods run to completion, as grpcio-testing calls methods."""

    def __init__(self, servicer: ConversationService) -> None:
        self._servicer = servicer

    def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Any
    ) -> pb.Conversation:
        return asyncio.run(self._servicer.CreateConversation(request, context))


def serving(store: Store) -> Any:
    """A grpcio-testing server of the servicer on this store, called by CALLER."""
    servicer = BlockingServicer(ConversationService(store, lambda: CALLER))
    servicers = {pb.DESCRIPTOR.services_by_name["ConversationService"]: servicer}
    return grpc_testing.server_from_dictionary(servicers, grpc_testing.strict_real_time())


@pytest.fixture
def grpc_server(store: Store) -> Any:
    return serving(store)


def create(server: Any, request: pb.CreateConversationRequest) -> tuple[Any, Any, Any, str]:
    rpc = server.invoke_unary_unary(METHOD, (), request, None)
    response, trailing_metadata, code, details = rpc.termination()
    return response, trailing_metadata, code, details


def test_create_returns_the_stored_conversation(
    grpc_server: Any, store: Store, organisation: Organisation
) -> None:
    response, _, code, _ = create(grpc_server, SEED)

    assert code is grpc.StatusCode.OK
    assert response.id >= 1
    assert (response.first_name, response.question) == ("A shopper", "How is this product?")
    assert (response.helpful, response.unhelpful, response.embeddable) == (0, 0, False)
    assert response.retailer_locale == "en-GB"
    assert list(response.answers) == []
    created_at = response.created_at.ToDatetime(tzinfo=datetime.UTC)
    assert created_at.microsecond == 0
    assert abs(datetime.datetime.now(datetime.UTC) - created_at) < datetime.timedelta(seconds=5)
    stored = store.get_conversation(response.id)
    assert stored is not None
    assert stored.created_at == created_at
    assert stored.sku == "AIPTPDV5700"


def test_locale_left_out_stores_the_organisations(
    grpc_server: Any, store: Store, organisation: Organisation
) -> None:
    request = pb.CreateConversationRequest(trkref="D10", first_name="Ann", question="Q?", sku="S")
    response, _, code, _ = create(grpc_server, request)
    assert code is grpc.StatusCode.OK
    assert store.get_conversation(response.id).locale == "en-GB"  # type: ignore[union-attr]


def test_unknown_trkref_is_not_found(grpc_server: Any, organisation: Organisation) -> None:
    request = pb.CreateConversationRequest()
    request.CopyFrom(SEED)
    request.trkref = "D11"
    _, _, code, details = create(grpc_server, request)
    assert code is grpc.StatusCode.NOT_FOUND
    assert details == "organisation 'D11' does not exist or you are not authorised to access it"


def test_invalid_request_names_every_bad_field(
    grpc_server: Any, store: Store, organisation: Organisation
) -> None:
    # grpcio-testing drops trailing metadata on abort: the BadRequest details
    # are asserted against the real server in test_server.py.
    request = pb.CreateConversationRequest(trkref="D10", first_name=" ", sku="S\x00", locale="?")
    _, _, code, details = create(grpc_server, request)

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details == (
        "invalid conversation: first_name: is required and must not be blank; "
        "question: is required and must not be blank; "
        "sku: must not contain control characters; "
        "locale: must be a language tag such as en-GB (at most 35 characters)"
    )
    assert store.count_conversations() == 0


def test_database_failure_is_unavailable(organisation: Organisation) -> None:
    unreachable = Store.open("postgresql://postgres@127.0.0.1:1/none")  # nothing listens there
    try:
        _, _, code, details = create(serving(unreachable), SEED)
    finally:
        unreachable.close()
    assert code is grpc.StatusCode.UNAVAILABLE
    # Nothing of where the database is: not its host, port or name.
    assert details == "database unavailable (connection lost); retry later"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_failing_batch_is_unavailable(
    grpc_server: Any, store: Store, organisation: Organisation
) -> None:
    create(grpc_server, SEED)  # D10 is looked up while the database is free
    # The write waits for SQLite's busy timeout (2 s), then the batch fails.
    with write_lock_held(store):
        _, _, code, details = create(grpc_server, SEED)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert details == "database unavailable (locked); retry later"
