"""What gRPC tools and clients read beside the answers: reflection v1 and v1alpha, RetryInfo on
the errors a client may retry, and the service config whose retry policy acts on them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from tests.e2e.service import (
    DEMO_AUTHORIZATION,
    ServiceProcess,
    call,
    free_port,
    grpcurl,
    scrape,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICE_CONFIG = ROOT / "docs" / "grpc" / "service-config.json"
SERVICE = "conversations.v4.ConversationService"
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
# The service's limits, low enough to reach: one stream open at once, a create every 2 s
# (within the 3 s the service config's 4 attempts wait, 1 s before each retry).
LIMITS = ["--max-streams", "1", "--rate-limit", "0.5", "--rate-burst", "1"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("grpc_details")
    metrics = ["--metrics-address", str(free_port())]
    with ServiceProcess(workdir, [*LIMITS, *metrics], rest=True, demo=True) as process:
        yield process


def metrics_port(service: ServiceProcess) -> int:
    found = service.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
    return int(found.group(1))


def create_request(question: str) -> pb.CreateConversationRequest:
    return pb.CreateConversationRequest(trkref="D10", first_name="R", question=question, sku="S")


def retry_delay(error: grpc.RpcError) -> float:
    """The RetryInfo delay of a failed call's rich status, in seconds."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError(f"no RetryInfo in {status.details}")


def rate_limited(stub: pb_grpc.ConversationServiceStub, metadata: list[tuple[str, str]]) -> None:
    """Spend the demo key's allowance: creates until one is refused (a handful at most)."""
    for n in range(5):
        try:
            stub.CreateConversation(create_request(f"spend {n}"), timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
            return
    raise AssertionError("the rate limit never refused a create")


def test_grpcurl_lists_both_reflection_versions(service: ServiceProcess) -> None:
    listed = grpcurl(service.address, "list")  # grpcurl 1.8 asks v1alpha
    described = grpcurl(service.address, "describe", "grpc.reflection.v1.ServerReflection")

    assert listed.returncode == 0, listed.stderr
    assert "grpc.reflection.v1.ServerReflection" in listed.stdout.split()
    assert "grpc.reflection.v1alpha.ServerReflection" in listed.stdout.split()
    assert described.returncode == 0, described.stderr
    assert "stream .grpc.reflection.v1.ServerReflectionRequest" in described.stdout


def test_reflection_v1_answers_a_v1_client(service: ServiceProcess) -> None:
    # The v1 messages are v1alpha's under another package: the same bytes on the wire.
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
    ]
    with grpc.insecure_channel(service.address) as channel:
        info = channel.stream_stream(
            V1,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, found = list(info(iter(requests), timeout=10))

    assert {s.name for s in listed.list_services_response.service} >= {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    }
    files = found.file_descriptor_response.file_descriptor_proto
    assert files and any(b"ConversationService" in file for file in files)


def test_a_rate_limited_call_carries_retry_info_and_rest_the_same_retry_after(
    service: ServiceProcess,
) -> None:
    metadata = [("authorization", DEMO_AUTHORIZATION)]
    with grpc.insecure_channel(service.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        rate_limited(stub, metadata)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateConversation(create_request("refused"), timeout=10, metadata=metadata)
    answers = [
        call(service, "POST", "/v4/organisations/D10/conversations", {"question": "q"})
        for _ in range(3)
    ]

    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused.value) == 1
    error: Any = refused.value
    trailing = dict(error.trailing_metadata() or ())
    assert trailing["grpc-retry-pushback-ms"] == "1000"
    limited = [answer for answer in answers if answer.status == 429]
    assert limited, [answer.status for answer in answers]
    assert all(answer.headers["retry-after"] == "1" for answer in limited)
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "1s"}
    assert all(answer.json()["details"] == [retry_info] for answer in limited)


def test_a_stream_over_the_limit_carries_retry_info(service: ServiceProcess) -> None:
    request = health_pb2.HealthCheckRequest()
    with grpc.insecure_channel(service.address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        first = health.Watch(request, timeout=30)
        assert next(first).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as refused:
            next(health.Watch(request, timeout=30))
        first.cancel()
    # The stream's budget back for the next test.
    watching = (
        'grpc_server_in_flight_calls{grpc_method="Watch",grpc_service="grpc.health.v1.Health",'
        'grpc_type="server_stream"}'
    )
    wait_for_sample(metrics_port(service), watching, 0)

    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused.value) == 1


def test_the_service_config_retries_a_rate_limited_create(service: ServiceProcess) -> None:
    config = SERVICE_CONFIG.read_text()
    metadata = [("authorization", DEMO_AUTHORIZATION), ("x-request-id", "retried-create")]
    with grpc.insecure_channel(service.address) as channel:
        rate_limited(pb_grpc.ConversationServiceStub(channel), metadata[:1])
    options = [("grpc.service_config", config), ("grpc.enable_retries", 1)]

    async def create() -> int:
        async with grpc.aio.insecure_channel(service.address, options=options) as channel:
            stub = pb_grpc.ConversationServiceStub(channel)
            answer = await stub.CreateConversation(
                create_request("asked once"), timeout=30, metadata=metadata
            )
            return int(answer.id)

    created = asyncio.run(create())
    attempts = logged_codes(service, "retried-create")

    assert created > 0
    # One call of the client's, several on the server: refused, then answered once the key's
    # allowance is back.
    assert len(attempts) >= 2 and attempts[-1] == "OK", attempts
    assert set(attempts[:-1]) == {"RESOURCE_EXHAUSTED"}, attempts


def logged_codes(service: ServiceProcess, request_id: str) -> list[str]:
    """The codes of the access log lines of `request_id`, once one is OK (the log is
    written after the answer)."""
    codes: list[str] = []
    for _ in range(100):
        lines = [line for line in service.log().splitlines() if f'"{request_id}"' in line]
        codes = [json.loads(line[line.index("{") :])["code"] for line in lines]
        if "OK" in codes:
            break
        threading.Event().wait(0.05)
    return codes


def test_the_service_config_retries_a_stream_refused_at_the_limit(
    service: ServiceProcess,
) -> None:
    """A second health Watch over --max-streams 1 is refused, then retried by the client's
    retry policy until the first one closes."""
    config = SERVICE_CONFIG.read_text()
    port = metrics_port(service)
    refused = (
        'grpc_server_handled_total{grpc_code="RESOURCE_EXHAUSTED",grpc_method="Watch",'
        'grpc_service="grpc.health.v1.Health",grpc_type="server_stream"}'
    )
    before = scrape(port).get(refused, 0)

    async def watch_twice() -> health_pb2.HealthCheckResponse:
        request = health_pb2.HealthCheckRequest()
        async with grpc.aio.insecure_channel(service.address) as first_channel:
            first_stub: Any = health_pb2_grpc.HealthStub(first_channel)
            first = first_stub.Watch(request)
            assert (await first.read()).status == health_pb2.HealthCheckResponse.SERVING
            options = [("grpc.service_config", config)]
            async with grpc.aio.insecure_channel(service.address, options=options) as channel:
                second_stub: Any = health_pb2_grpc.HealthStub(channel)
                second = second_stub.Watch(request, timeout=30)
                for _ in range(200):  # until the server has refused the second once
                    if (await asyncio.to_thread(scrape, port)).get(refused, 0) > before:
                        break
                    await asyncio.sleep(0.05)
                first.cancel()
                answer = await second.read()
                second.cancel()
                assert isinstance(answer, health_pb2.HealthCheckResponse)
                return answer

    answer = asyncio.run(watch_twice())

    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert scrape(port)[refused] > before


def test_a_call_held_by_a_draining_server_is_unavailable_with_retry_info(
    tmp_path: Path,
) -> None:
    """SIGTERM while a call is in flight (a failed authentication, answered after
    --failed-auth-delay): a call arriving then is held, and answered UNAVAILABLE."""
    slow_failures = ["--failed-auth-burst", "1", "--failed-auth-rate", "0.01"]
    args = [*slow_failures, "--failed-auth-delay", "5", "--metrics-address", str(free_port())]
    wrong = [("authorization", "Basic d3Jvbmc6d3Jvbmc=")]  # wrong:wrong
    with ServiceProcess(tmp_path, args, demo=True) as service:
        port = metrics_port(service)
        in_flight = (
            'grpc_server_in_flight_calls{grpc_method="CreateConversation",'
            f'grpc_service="{SERVICE}",grpc_type="unary"}}'
        )
        with grpc.insecure_channel(service.address) as channel:
            stub = pb_grpc.ConversationServiceStub(channel)
            health: Any = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.RpcError):
                stub.CreateConversation(create_request("w"), timeout=10, metadata=wrong)
            delayed = threading.Thread(target=failing_create, args=(stub, wrong), daemon=True)
            delayed.start()
            wait_for_sample(port, in_flight, 1)
            service.process.send_signal(signal.SIGTERM)
            wait_for_not_serving(health)
            with pytest.raises(grpc.RpcError) as held:
                stub.CreateConversation(
                    create_request("held"),
                    timeout=30,
                    metadata=[("authorization", DEMO_AUTHORIZATION)],
                )
            delayed.join(timeout=30)
        exit_code = service.process.wait(timeout=30)

    assert held.value.code() is grpc.StatusCode.UNAVAILABLE, held.value
    assert retry_delay(held.value) == 1
    assert exit_code == 0


def failing_create(stub: pb_grpc.ConversationServiceStub, metadata: list[tuple[str, str]]) -> None:
    with contextlib.suppress(grpc.RpcError):  # UNAUTHENTICATED, after the delay
        stub.CreateConversation(create_request("slow"), timeout=30, metadata=metadata)


def wait_for_sample(port: int, sample: str, value: float) -> None:
    for _ in range(200):
        if scrape(port).get(sample) == value:
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"{sample} never reached {value}")


def wait_for_not_serving(health: Any) -> None:
    request = health_pb2.HealthCheckRequest(service=SERVICE)
    for _ in range(200):
        if health.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING:
            return
        threading.Event().wait(0.05)
    raise AssertionError("the service never reported NOT_SERVING")
