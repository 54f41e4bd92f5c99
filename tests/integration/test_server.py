"""The real gRPC server in-process on an ephemeral port: health, reflection, limits, log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.databases import BatchesBegun, write_lock_held
from harness.support import Metadata
from server.api.decoding import MALFORMED_MESSAGE
from server.api.servicer import SERVICE_NAME
from server.app import RunningServer, start_server
from server.config import Config
from server.service.domain import Organisation
from server.storage.store import Store
from tests.integration.conftest import OnLoop

# A valid create; the stubs do not change the messages they send.
ASK = pb.CreateConversationRequest(trkref="D10", first_name="Ann", question="Q?", sku="S")


@pytest.fixture
def running(organisation: Organisation, start: Callable[..., RunningServer]) -> RunningServer:
    return start()


@pytest.fixture
def channel(running: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield channel


def test_health_is_serving_then_not_serving_on_shutdown(
    running: RunningServer, channel: grpc.Channel, on_loop: OnLoop
) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)  # its stubs lack the methods
    for service in ("", SERVICE_NAME):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    on_loop(running.health.enter_graceful_shutdown())
    response = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_watch_streams_each_change_of_status(
    running: RunningServer, channel: grpc.Channel, on_loop: OnLoop
) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    statuses = health_pb2.HealthCheckResponse
    assert next(watch).status == statuses.SERVING

    on_loop(running.health.enter_graceful_shutdown())
    assert next(watch).status == statuses.NOT_SERVING
    watch.cancel()


def test_invalid_request_carries_bad_request_details(channel: grpc.Channel, auth: Metadata) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    request = pb.CreateConversationRequest(trkref="D10", first_name="Ann", question=" ", sku="")
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateConversation(request, timeout=5, metadata=auth)

    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("question", "is required and must not be blank"),
        ("sku", "is required and must not be blank"),
    ]


def test_oversized_request_is_resource_exhausted(channel: grpc.Channel, auth: Metadata) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    request = pb.CreateConversationRequest(
        trkref="D10", first_name="Ann", question="x" * 70_000, sku="S"
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateConversation(request, timeout=5, metadata=auth)
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]


def test_each_call_logs_one_json_line(
    channel: grpc.Channel, auth: Metadata, caplog: pytest.LogCaptureFixture
) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    caplog.set_level(logging.INFO, logger="conversation_service.access")
    stub.CreateConversation(
        ASK,
        timeout=5,
        metadata=auth,
    )
    with pytest.raises(grpc.RpcError):
        stub.CreateConversation(
            pb.CreateConversationRequest(trkref="D10"), timeout=5, metadata=auth
        )
    with pytest.raises(grpc.RpcError):
        stub.CreateConversation(pb.CreateConversationRequest(trkref="D10"), timeout=5)

    # An aborted call's status is sent before its line is logged, on the server's loop.
    deadline = time.monotonic() + 5
    while len(access_lines(caplog)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = access_lines(caplog)
    method = f"/{SERVICE_NAME}/CreateConversation"
    assert [(line["method"], line["code"]) for line in lines] == [
        (method, "OK"),
        (method, "INVALID_ARGUMENT"),
        (method, "UNAUTHENTICATED"),
    ]
    assert all(line["duration_ms"] >= 0 for line in lines)


def test_malformed_protobuf_is_invalid_argument_logged_and_counted(
    channel: grpc.Channel, auth: Metadata, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conversation_service.access")
    method = f"/{SERVICE_NAME}/CreateConversation"
    raw: Any = channel.unary_unary(method)  # bytes in, bytes out
    garbage = b"\x0a\xff\xff\xff\xff\x0f"  # field 1 with a length past the end
    labels = {
        "grpc_type": "unary",
        "grpc_service": SERVICE_NAME,
        "grpc_method": "CreateConversation",
        "grpc_code": "INVALID_ARGUMENT",
    }
    # The registry is the process's: other tests' calls are counted in it too.
    before = REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0
    with pytest.raises(grpc.RpcError) as anonymous:
        raw(garbage, timeout=5)
    with pytest.raises(grpc.RpcError) as raised:
        raw(garbage, timeout=5, metadata=auth)

    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED  # credentials first
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == MALFORMED_MESSAGE
    # The status is sent before the call is counted and logged, on the server's loop.
    deadline = time.monotonic() + 5
    while len(access_lines(caplog)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the captured log
    counted = REGISTRY.get_sample_value("grpc_server_handled_total", labels)
    assert counted == before + 1
    codes = [(line["method"], line["code"]) for line in access_lines(caplog)]
    assert codes == [(method, "UNAUTHENTICATED"), (method, "INVALID_ARGUMENT")]


def test_port_in_use_is_an_error(running: RunningServer, store: Store, on_loop: OnLoop) -> None:
    with pytest.raises(RuntimeError):
        on_loop(start_server(Config(grpc_address=f"127.0.0.1:{running.port}"), store))


def test_idempotency_key_metadata_makes_a_retry_return_the_first_create(
    channel: grpc.Channel, auth: Metadata
) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    request = pb.CreateConversationRequest(trkref="D10", first_name="Ann", question="Q?", sku="S")
    metadata = (*auth, ("idempotency-key", "9b2e4f7c-1d3a-4e5b-8c6d-7e8f9a0b1c2d"))
    first = stub.CreateConversation(request, timeout=5, metadata=metadata)
    retry = stub.CreateConversation(request, timeout=5, metadata=metadata)
    request.question = "Another question?"
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateConversation(request, timeout=5, metadata=metadata)

    assert retry == first
    assert raised.value.code() is grpc.StatusCode.ALREADY_EXISTS


def test_two_different_idempotency_keys_are_invalid_with_a_reason(
    channel: grpc.Channel, auth: Metadata, store: Store
) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    keys = ("9b2e4f7c-1d3a-4e5b-8c6d-7e8f9a0b1c2d", "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
    metadata = (*auth, *(("idempotency-key", key) for key in keys))
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateConversation(ASK, timeout=5, metadata=metadata)
    same_twice = (*auth, *(("idempotency-key", keys[0]) for _ in range(2)))
    created = stub.CreateConversation(ASK, timeout=5, metadata=same_twice)

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    [violation] = bad_request.field_violations
    assert (violation.field, violation.reason) == ("request_id", "IDEMPOTENCY_KEY_MISMATCH")
    assert violation.description == "the Idempotency-Key headers differ"
    assert store.count_conversations() == 1 and created.id == 1


def test_health_answers_while_a_create_waits_on_the_database(
    store: Store, channel: grpc.Channel, auth: Metadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    health: Any = health_pb2_grpc.HealthStub(channel)
    stub.CreateConversation(ASK, timeout=5, metadata=auth)  # the key and D10 are known
    batches = BatchesBegun(monkeypatch)

    with write_lock_held(store) as release:
        waiting = stub.CreateConversation.future(ASK, timeout=10, metadata=auth)
        batches.wait(1)  # its batch waits on the lock
        # Nothing on the event loop waits for the database: health answers meanwhile.
        response = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        assert not waiting.done()
        release()
        assert waiting.result(timeout=10).id > 0


def gave_up(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether a call the caller gave up on is logged. The client ends the call at its
    deadline; the server's deadline started when the call arrived, a little later, so on
    a busy machine it may see the client's cancel first."""
    codes = [line["code"] for line in access_lines(caplog)]
    return "DEADLINE_EXCEEDED" in codes or "CANCELLED" in codes


def test_a_create_whose_caller_gave_up_before_its_batch_was_taken_is_not_stored(
    store: Store,
    channel: grpc.Channel,
    auth: Metadata,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = pb_grpc.ConversationServiceStub(channel)
    stub.CreateConversation(ASK, timeout=5, metadata=auth)
    caplog.set_level(logging.INFO, logger="conversation_service.access")
    batches = BatchesBegun(monkeypatch)

    with write_lock_held(store) as release:
        written = stub.CreateConversation.future(ASK, timeout=10, metadata=auth)
        batches.wait(1)  # its batch is being written, held by the lock
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateConversation(ASK, timeout=0.3, metadata=auth)
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        # The server has let go of the call once it has logged it.
        deadline = time.monotonic() + 10
        while not gave_up(caplog) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the captured log
        release()
        assert written.result(timeout=10).id > 0

    assert store.count_conversations() == 2
    assert gave_up(caplog)


def test_calls_over_the_concurrency_limit_are_refused_at_once(
    store: Store,
    start: Callable[..., RunningServer],
    auth: Metadata,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limited = start(max_concurrent_calls=1)
    batches = BatchesBegun(monkeypatch)
    with grpc.insecure_channel(f"127.0.0.1:{limited.port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        stub.CreateConversation(ASK, timeout=5, metadata=auth)  # the key and D10 are known
        with write_lock_held(store) as release:
            waiting = stub.CreateConversation.future(ASK, timeout=10, metadata=auth)
            batches.wait(2)  # the second create's batch waits on the lock
            # Refused while the call in flight still waits: not queued behind it.
            with pytest.raises(grpc.RpcError) as raised:
                stub.CreateConversation(ASK, timeout=5, metadata=auth)
            assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert not waiting.done()
            release()
            assert waiting.result(timeout=10).id > 0
        # Once the call in flight is done, calls are served again.
        assert stub.CreateConversation(ASK, timeout=5, metadata=auth).id > 0
