"""Access control on the real server in-process: API keys, tenant isolation, limits, TLS."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import Metadata, basic
from server.api.auth import AuthInterceptor
from server.app import RunningServer
from server.service import api_keys, organisations
from server.service.api_keys import IssuedKey
from server.service.domain import Organisation
from server.storage.store import Store

REQUEST = pb.CreateConversationRequest(trkref="D10", first_name="Ann", question="Q?", sku="S1")
Start = Callable[..., RunningServer]


def create(
    port: int, metadata: Metadata = (), request: pb.CreateConversationRequest = REQUEST
) -> tuple[grpc.StatusCode, str, dict[str, Any]]:
    """Code, details and trailing metadata of one create on a plaintext channel."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        try:
            stub.CreateConversation(request, timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            call: Any = error
            return call.code(), call.details(), dict(call.trailing_metadata() or ())
    return grpc.StatusCode.OK, "", {}


@pytest.fixture
def server(start: Start, organisation: Organisation) -> RunningServer:
    return start()


def test_valid_key_creates(server: RunningServer, auth: Metadata) -> None:
    assert create(server.port, auth)[0] is grpc.StatusCode.OK


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret-only").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
def test_missing_or_malformed_credentials_are_unauthenticated(
    server: RunningServer, issued_key: IssuedKey, authorization: str | None
) -> None:
    metadata = () if authorization is None else (("authorization", authorization),)
    code, details, trailing = create(server.port, metadata)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details == "missing or invalid credentials: use HTTP Basic with an API key"
    assert trailing["www-authenticate"] == 'Basic realm="Platform API v4"'


def test_wrong_secret_and_unknown_key_read_the_same(
    server: RunningServer, issued_key: IssuedKey
) -> None:
    wrong_secret = create(server.port, basic(issued_key.key_id, "not-the-secret"))
    unknown_key = create(server.port, basic("key_unknown", issued_key.secret))
    assert (
        wrong_secret[:2]
        == unknown_key[:2]
        == (
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or invalid credentials: use HTTP Basic with an API key",
        )
    )


def test_a_key_used_before_still_refuses_a_wrong_secret(
    server: RunningServer, issued_key: IssuedKey, auth: Metadata
) -> None:
    assert create(server.port, auth)[0] is grpc.StatusCode.OK
    wrong_secret = basic(issued_key.key_id, "not-the-secret")
    assert create(server.port, wrong_secret)[0] is grpc.StatusCode.UNAUTHENTICATED
    assert create(server.port, auth)[0] is grpc.StatusCode.OK


def test_each_spelling_of_the_credentials_is_read_past_the_remembered_limit(
    start: Start, auth: Metadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AuthInterceptor, "MAX_REMEMBERED", 1)
    server = start()
    token = auth[0][1].split(" ", 1)[1]
    spellings = [f"Basic {token}", f"basic {token}", f"BASIC {token}"] * 2
    codes = [create(server.port, (("authorization", value),))[0] for value in spellings]
    assert codes == [grpc.StatusCode.OK] * 6


def test_revoked_key_is_refused_at_once(
    server: RunningServer, store: Store, issued_key: IssuedKey, auth: Metadata
) -> None:
    assert create(server.port, auth)[0] is grpc.StatusCode.OK
    api_keys.revoke_key(store, issued_key.key_id)
    assert create(server.port, auth)[0] is grpc.StatusCode.UNAUTHENTICATED


def test_another_organisation_is_indistinguishable_from_none(
    server: RunningServer, store: Store, auth: Metadata
) -> None:
    other = pb.CreateConversationRequest(trkref="E20", first_name="A", question="Q", sku="S")
    while_unknown = create(server.port, auth, other)
    organisations.add_organisation(store, Organisation("E20", "Another retailer", "fr-FR"))
    api_keys.create_key(store, ["E20"])
    while_someone_elses = create(server.port, auth, other)

    assert while_unknown[0] is grpc.StatusCode.NOT_FOUND
    assert while_someone_elses == while_unknown


def test_rate_limit_is_resource_exhausted(start: Start, auth: Metadata) -> None:
    limited = start(rate_limit=0.001, rate_burst=3)
    codes = [create(limited.port, auth)[0] for _ in range(5)]
    assert codes == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    _, details, _ = create(limited.port, auth)
    assert details == "rate limit exceeded for this API key; retry later"


def test_health_needs_no_credentials(server: RunningServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        response = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def list_services(port: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return [s.name for s in response.list_services_response.service]


def test_reflection_is_open_unless_turned_off(start: Start, organisation: Organisation) -> None:
    assert "conversations.v4.ConversationService" in list_services(start().port)
    with pytest.raises(grpc.RpcError) as raised:
        list_services(start(reflection=False).port)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_files(tmp_path: Path, ca: trustme.CA) -> dict[str, Path]:
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server-key.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server_cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server_cert.private_key_pem.write_to_path(str(files["key"]))
    return files


def create_tls(
    port: int, ca: trustme.CA, metadata: Metadata, client: trustme.LeafCert | None = None
) -> grpc.StatusCode:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem.bytes(),
        private_key=client.private_key_pem.bytes() if client else None,
        certificate_chain=client.cert_chain_pems[0].bytes() if client else None,
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            pb_grpc.ConversationServiceStub(channel).CreateConversation(
                REQUEST, timeout=10, metadata=metadata
            )
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_tls_serves_tls_clients_only(
    start: Start, tmp_path: Path, ca: trustme.CA, auth: Metadata
) -> None:
    files = tls_files(tmp_path, ca)
    server = start(tls_cert=files["cert"], tls_key=files["key"])

    assert create_tls(server.port, ca, auth) is grpc.StatusCode.OK
    assert create(server.port, auth)[0] is grpc.StatusCode.UNAVAILABLE
    assert create_tls(server.port, trustme.CA(), auth) is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_clients_without_a_certificate(
    start: Start, tmp_path: Path, ca: trustme.CA, auth: Metadata
) -> None:
    files = tls_files(tmp_path, ca)
    clients = trustme.CA()
    (tmp_path / "clients.pem").write_bytes(clients.cert_pem.bytes())
    server = start(
        tls_cert=files["cert"], tls_key=files["key"], tls_client_ca=tmp_path / "clients.pem"
    )

    assert create_tls(server.port, ca, auth) is grpc.StatusCode.UNAVAILABLE
    stranger = trustme.CA().issue_cert("intruder")
    assert create_tls(server.port, ca, auth, stranger) is grpc.StatusCode.UNAVAILABLE
    internal = clients.issue_cert("internal-caller")
    assert create_tls(server.port, ca, auth, internal) is grpc.StatusCode.OK
    # Credentials are still required inside mutual TLS.
    assert create_tls(server.port, ca, (), internal) is grpc.StatusCode.UNAUTHENTICATED


def list_answers(
    port: int, metadata: Metadata, request: pb.ListAnswersRequest
) -> tuple[grpc.StatusCode, str, bytes]:
    """Code, details and the serialized page of one ListAnswers."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        try:
            page = stub.ListAnswers(request, timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            call: Any = error
            return call.code(), call.details(), b""
    return grpc.StatusCode.OK, "", page.SerializeToString()


def test_another_organisations_answers_are_indistinguishable_from_none(
    server: RunningServer, store: Store, auth: Metadata
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        conversation = stub.CreateConversation(REQUEST, timeout=10, metadata=auth)
        answer = pb.NewAnswer(response="Yes.", first_name="Bo")
        for _ in range(3):
            asked = pb.CreateAnswerRequest(conversation_id=conversation.id, trkref="D10")
            asked.answer.CopyFrom(answer)
            stub.CreateAnswer(asked, timeout=10, metadata=auth)
    organisations.add_organisation(store, Organisation("E20", "Another retailer", "fr-FR"))
    issued = api_keys.create_key(store, ["E20"])
    other = basic(issued.key_id, issued.secret)
    first = pb.ListAnswersRequest(conversation_id=conversation.id, trkref="D10", page_size=1)
    code, _, page = list_answers(server.port, auth, first)
    assert code is grpc.StatusCode.OK
    token = pb.ListAnswersResponse.FromString(page).next_page_token
    assert token

    missing = list_answers(
        server.port, other, pb.ListAnswersRequest(conversation_id=9999, trkref="E20")
    )
    as_theirs = list_answers(
        server.port, other, pb.ListAnswersRequest(conversation_id=conversation.id, trkref="E20")
    )
    out_of_reach = list_answers(server.port, other, first)
    with_their_token = list_answers(
        server.port,
        other,
        pb.ListAnswersRequest(conversation_id=conversation.id, trkref="D10", page_token=token),
    )
    assert missing[0] is grpc.StatusCode.NOT_FOUND
    assert as_theirs == out_of_reach == with_their_token == missing
    # A token of D10's conversation is no token of another organisation's request.
    token_elsewhere = list_answers(
        server.port,
        other,
        pb.ListAnswersRequest(conversation_id=conversation.id, trkref="E20", page_token=token),
    )
    assert token_elsewhere[:2] == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid request: page_token: is not a page token of this request",
    )


def test_failures_waiting_past_an_allowance_leave_calls_for_clients_with_keys(
    start: Start, auth: Metadata
) -> None:
    # Given an address past its allowance (one failure), whose failures wait a minute, on a
    # server that serves 4 calls at once
    server = start(
        max_concurrent_calls=4,
        failed_auth_rate=0.001,
        failed_auth_burst=1,
        failed_auth_delay=60,
    )
    assert create(server.port, auth)[0] is grpc.StatusCode.OK  # the key is known
    stranger = basic("stranger", "a guess")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        failing = [
            stub.CreateConversation.future(REQUEST, metadata=stranger, timeout=120)
            for _ in range(6)
        ]
        # When its failures beyond half the calls at once have been answered
        deadline = time.monotonic() + 30
        while sum(call.done() for call in failing) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)

        # Then two wait, and a client with a key is still served
        assert sum(call.done() for call in failing) == 4
        assert create(server.port, auth)[0] is grpc.StatusCode.OK
        assert sum(call.done() for call in failing) == 4
        for call in failing:
            call.cancel()
