"""A revoked key is refused on every method, by every process and replica, within
Authenticator.REVOCATION_BOUND seconds of `keys revoke` (over gRPC, any case of `Basic`,
and REST through Envoy), although every process had the key in memory."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.databases import empty_postgres
from harness.support import basic_authorization, cli, organisation_with_key
from server.service.authentication import Authenticator
from tests.e2e.service import ServiceProcess, http

BOUND = Authenticator.REVOCATION_BOUND
# Channels per check: new connections, which the kernel spreads over a port's processes.
CHANNELS = 6


def every_method(conversation_id: int, answer_id: int) -> dict[str, Callable[..., Any]]:
    """One call of each method of the service, by name, as a function of a stub and metadata."""
    trkref = "D10"
    on_conversation: dict[str, Any] = {"id": conversation_id, "trkref": trkref}
    on_answer: dict[str, Any] = {"id": answer_id, "trkref": trkref}
    requests: dict[str, Any] = {
        "CreateConversation": pb.CreateConversationRequest(
            trkref=trkref, first_name="A shopper", question="Still quiet?", sku="SKU1"
        ),
        "GetConversation": pb.GetConversationRequest(**on_conversation),
        "ListConversations": pb.ListConversationsRequest(trkref=trkref, sku="SKU1"),
        "CreateAnswer": pb.CreateAnswerRequest(
            conversation_id=conversation_id,
            trkref=trkref,
            answer=pb.NewAnswer(response="Yes.", first_name="Ann"),
        ),
        "IncrementConversationHelpful": pb.IncrementConversationHelpfulRequest(**on_conversation),
        "IncrementConversationUnhelpful": pb.IncrementConversationUnhelpfulRequest(
            **on_conversation
        ),
        "IncrementAnswerHelpful": pb.IncrementAnswerHelpfulRequest(**on_answer),
        "IncrementAnswerUnhelpful": pb.IncrementAnswerUnhelpfulRequest(**on_answer),
    }
    return {
        name: lambda stub, metadata, name=name, request=request: getattr(stub, name)(
            request, metadata=metadata, timeout=10
        )
        for name, request in requests.items()
    }


def codes(address: str, authorizations: Sequence[str], methods: Sequence[str], ids: tuple[int, int]
          ) -> set[tuple[str, str]]:  # fmt: skip
    """The distinct (method, status code) of each method called with each authorization, on
    CHANNELS new connections."""
    seen: set[tuple[str, str]] = set()
    calls = every_method(*ids)
    for _ in range(CHANNELS):
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.ConversationServiceStub(channel)
            for authorization in authorizations:
                for method in methods:
                    try:
                        calls[method](stub, (("authorization", authorization),))
                        seen.add((method, "OK"))
                    except grpc.RpcError as error:
                        seen.add((method, error.code().name))
    return seen


READ_PATHS = ("/v4/conversations/1?trkref=D10", "/v4/organisations/D10/conversations?sku=SKU1")


def rest_statuses(base_url: str, authorization: str) -> set[int]:
    """Statuses of REST Get and List through Envoy, a few times each (Envoy spreads them)."""
    return {
        http("GET", base_url + path, headers={"authorization": authorization}).status
        for path in READ_PATHS
        for _ in range(CHANNELS)
    }  # fmt: skip


def conversation_and_answer(address: str, authorization: str) -> tuple[int, int]:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        metadata = (("authorization", authorization),)
        created = every_method(0, 0)["CreateConversation"](stub, metadata)
        answer = every_method(created.id, 0)["CreateAnswer"](stub, metadata)
    return created.id, answer.id


def revoke(database_url: str, key_id: str) -> float:
    """`keys revoke KEY_ID`; the time.monotonic() at which it had committed."""
    revoked = cli(database_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    return time.monotonic()


def past_the_bound(revoked_at: float, address: str, authorization: str) -> None:
    """Go on reading with the key until the bound has passed since the revocation: whatever
    these calls get, what counts is every call after."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        while time.monotonic() < revoked_at + BOUND:
            with contextlib.suppress(grpc.RpcError):
                stub.GetConversation(
                    pb.GetConversationRequest(id=1, trkref="D10"),
                    metadata=(("authorization", authorization),),
                    timeout=10,
                )


READS = ("GetConversation", "ListConversations")


def test_a_revoked_key_is_refused_on_every_method_within_the_bound(
    database_url: str, tmp_path: Path
) -> None:
    # Given a key every process of `serve` (one per core on PostgreSQL) has used, over gRPC
    # (with `Basic` and `basic`) and REST
    key = organisation_with_key(database_url)
    authorization = basic_authorization(*key)
    spellings = (authorization, authorization.replace("Basic", "basic"))
    with ServiceProcess(tmp_path, ["--database-url", database_url], rest=True) as service:
        ids = conversation_and_answer(service.address, authorization)
        assert codes(service.address, spellings, READS, ids) == {(m, "OK") for m in READS}
        assert rest_statuses(service.base_url, authorization) == {200}

        # When the key is revoked, and the bound has passed
        revoked_at = revoke(database_url, key[0])
        past_the_bound(revoked_at, service.address, authorization)

        # Then every method refuses it, over gRPC and REST
        methods = tuple(every_method(*ids))
        assert codes(service.address, spellings, methods, ids) == {
            (method, "UNAUTHENTICATED") for method in methods
        }
        assert rest_statuses(service.base_url, authorization) == {401}


def test_a_key_revoked_is_refused_by_both_replicas_within_the_bound(
    postgres_url: str, tmp_path: Path
) -> None:
    # Given two replicas on one PostgreSQL that have both read with a key
    empty_postgres(postgres_url)
    key = organisation_with_key(postgres_url)
    authorization = basic_authorization(*key)
    args = ["--database-url", postgres_url, "--processes", "1"]
    replicas = [ServiceProcess(tmp_path, args) for _ in range(2)]
    with replicas[0], replicas[1]:
        ids = conversation_and_answer(replicas[0].address, authorization)
        for replica in replicas:
            assert codes(replica.address, [authorization], READS, ids) == {(m, "OK") for m in READS}

        # When the key is revoked, and the bound has passed
        revoked_at = revoke(postgres_url, key[0])
        past_the_bound(revoked_at, replicas[1].address, authorization)

        # Then both refuse it on every method
        methods = tuple(every_method(*ids))
        for replica in replicas:
            assert codes(replica.address, [authorization], methods, ids) == {
                (method, "UNAUTHENTICATED") for method in methods
            }
