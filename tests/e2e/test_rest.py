"""REST through the real Envoy transcoder that `serve` starts: the v4 API's wire format."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import (
    basic_authorization,
    cli,
    create_key,
    stored_conversation,
    stored_questions,
)
from tests.e2e.service import (
    DEMO_CREDENTIALS,
    HttpResponse,
    ServiceProcess,
    assert_rpc_status,
    grpcurl,
    http,
)

SEED_BODY = {
    "first_name": "A shopper",
    "question": "How is this product?",
    "locale": "en-GB",
    "sku": "AIPTPDV5700",
}
# The seed's documented response, id and time aside.
DOCUMENTED = {
    "id": 223049,
    "first_name": "A shopper",
    "question": "How is this product?",
    "created_at": "2014-10-07T14:17:56Z",
    "helpful": 0,
    "unhelpful": 0,
    "embeddable": False,
    "retailer_locale": "en-GB",
    "answers": [],
    "answers_count": 0,
    "answers_next_page_token": "",
    # Moderation: the demo organisation publishes at once what screening does not hold.
    "status": "PUBLISHED",
    "held_for": [],
}
CONVERSATIONS = "/v4/organisations/D10/conversations"
DEMO = basic_authorization(*DEMO_CREDENTIALS)
JSON = {"content-type": "application/json", "authorization": DEMO}


def post(service: ServiceProcess, path: str, body: object, **headers: str) -> HttpResponse:
    """POST JSON with the demo key, unless `authorization` says otherwise ("" for none)."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    merged = {k: v for k, v in {**JSON, **headers}.items() if v}
    return http("POST", service.base_url + path, data, merged)


def database_of(service: ServiceProcess) -> str:
    return f"sqlite:///{service.workdir}/var/conversations.db"


def assert_status_body(response: HttpResponse, status: int, code: int, message: str) -> Any:
    """A google.rpc.Status JSON body with this HTTP status, gRPC code and message part."""
    body = assert_rpc_status(response, status)
    assert body["code"] == code
    assert message in body["message"]
    return body


def test_seed_request_returns_the_documented_body(rest: ServiceProcess) -> None:
    response = http("POST", rest.base_url + CONVERSATIONS, json.dumps(SEED_BODY), JSON)

    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == list(DOCUMENTED)
    assert {k: type(v) for k, v in body.items()} == {k: type(v) for k, v in DOCUMENTED.items()}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    assert {k: body[k] for k in DOCUMENTED if k not in ("id", "created_at")} == {
        k: v for k, v in DOCUMENTED.items() if k not in ("id", "created_at")
    }
    # Byte for byte the shape of the documented example: no whitespace.
    assert response.body.startswith(b'{"id":') and b": " not in response.body


def test_rest_create_is_stored_as_grpc_returns_it(rest: ServiceProcess) -> None:
    created = http("POST", rest.base_url + CONVERSATIONS, json.dumps(SEED_BODY), JSON).json()
    with grpc.insecure_channel(rest.address) as channel:
        via_grpc = pb_grpc.ConversationServiceStub(channel).CreateConversation(
            pb.CreateConversationRequest(trkref="D10", **SEED_BODY),
            timeout=10,
            metadata=[("authorization", DEMO)],
        )

    stored = stored_conversation(database_of(rest), created["id"])
    stored_grpc = stored_conversation(database_of(rest), via_grpc.id)
    assert stored is not None and stored_grpc is not None
    assert (stored.first_name, stored.question, stored.sku, stored.locale) == (
        "A shopper",
        "How is this product?",
        "AIPTPDV5700",
        "en-GB",
    )
    assert stored.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") == created["created_at"]
    assert via_grpc.id == created["id"] + 1
    same_fields = (
        "first_name",
        "question",
        "helpful",
        "unhelpful",
        "embeddable",
        "retailer_locale",
    )
    assert {f: getattr(via_grpc, f) for f in same_fields} == {f: created[f] for f in same_fields}


def test_invalid_input_is_400_with_every_field_violation(rest: ServiceProcess) -> None:
    response = post(rest, CONVERSATIONS, {"first_name": " ", "sku": "x" * 101, "locale": "en GB"})

    body = assert_status_body(response, 400, 3, "invalid conversation")
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    fields = [v["field"] for v in body["details"][0]["field_violations"]]
    assert fields == ["first_name", "question", "sku", "locale"]


def test_unknown_organisation_is_404(rest: ServiceProcess) -> None:
    response = post(rest, "/v4/organisations/NOPE/conversations", SEED_BODY)
    assert_status_body(response, 404, 5, "organisation 'NOPE' does not exist")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/v4/organisations/D10/questions"),
        ("GET", "/v4/organisations/D10"),
        ("PUT", CONVERSATIONS),
        ("DELETE", CONVERSATIONS),
        ("POST", "/conversations.v4.ConversationService/CreateConversation"),
    ],
)
def test_unknown_route_is_404_json(rest: ServiceProcess, method: str, path: str) -> None:
    response = http(method, rest.base_url + path, "{}" if method != "GET" else None, JSON)
    assert_status_body(response, 404, 5, "")


@pytest.mark.parametrize("body", ['{"first_name": ', "not json", '{"sku": 5}', "[1, 2]"])
def test_malformed_json_is_400_json(rest: ServiceProcess, body: str) -> None:
    assert_status_body(post(rest, CONVERSATIONS, body), 400, 3, "")


def test_trkref_in_body_cannot_override_the_path(rest: ServiceProcess) -> None:
    response = post(rest, CONVERSATIONS, {**SEED_BODY, "trkref": "OTHER"})
    assert_status_body(response, 400, 3, "")


def test_body_over_the_limit_is_413_json(rest: ServiceProcess) -> None:
    response = post(rest, CONVERSATIONS, {**SEED_BODY, "question": "x" * 70_000})
    assert_status_body(response, 413, 8, "")


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer x", "Basic bm90LWJhc2U2NA", basic_authorization("demo", "wrong-secret")],
)
def test_missing_or_wrong_credentials_are_401_with_www_authenticate(
    rest: ServiceProcess, authorization: str
) -> None:
    response = post(rest, CONVERSATIONS, SEED_BODY, authorization=authorization)
    assert_status_body(response, 401, 16, "missing or invalid credentials")
    assert response.headers["www-authenticate"] == 'Basic realm="Platform API v4"'


def test_revoked_key_is_401_at_once(rest: ServiceProcess) -> None:
    key_id, secret = create_key(database_of(rest), "D10")
    key = basic_authorization(key_id, secret)
    assert post(rest, CONVERSATIONS, SEED_BODY, authorization=key).status == 200

    revoked = cli(database_of(rest), "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr

    assert_status_body(post(rest, CONVERSATIONS, SEED_BODY, authorization=key), 401, 16, "")


def test_other_retailers_organisation_is_404_byte_identical_to_none(rest: ServiceProcess) -> None:
    path = "/v4/organisations/E20/conversations"
    while_unknown = post(rest, path, SEED_BODY)
    added = cli(
        database_of(rest), "organisations", "add", "E20", "--name", "Rival", "--locale", "en-US"
    )
    assert added.returncode == 0, added.stderr
    create_key(database_of(rest), "E20")
    while_someone_elses = post(rest, path, SEED_BODY)

    assert while_unknown.status == while_someone_elses.status == 404
    assert while_someone_elses.body == while_unknown.body
    assert while_someone_elses.headers["content-type"] == "application/json"


def test_rate_limit_is_429(tmp_path: Path) -> None:
    with ServiceProcess(
        tmp_path, ["--rate-limit", "0.001", "--rate-burst", "2"], rest=True, demo=True
    ) as svc:
        statuses = [post(svc, CONVERSATIONS, SEED_BODY).status for _ in range(4)]
        limited = post(svc, CONVERSATIONS, SEED_BODY)
    assert statuses == [200, 200, 429, 429]
    assert_status_body(limited, 429, 8, "rate limit exceeded")


def test_health_of_the_grpc_port_needs_no_credentials(rest: ServiceProcess) -> None:
    checked = grpcurl(rest.address, "grpc.health.v1.Health/Check")
    assert json.loads(checked.stdout) == {"status": "SERVING"}


def test_rest_is_on_by_default_and_stops_with_the_service(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, rest=True, demo=True) as service:
        assert post(service, CONVERSATIONS, SEED_BODY).status == 200
        exit_code = service.stop()
    assert exit_code == 0
    assert "REST serving on" in service.log()
    with pytest.raises(OSError):
        http("GET", service.base_url + "/")


def test_headers_grpc_cannot_carry_are_dropped_not_a_500(rest: ServiceProcess) -> None:
    odd = {"np364^joo^": "x", "r$": "1", "x-thing-bin": "!!!", "x-note": "café"}
    response = post(rest, CONVERSATIONS, SEED_BODY, **odd)
    assert response.status == 200


def test_idempotency_key_header_or_body_field_makes_retries_safe(rest: ServiceProcess) -> None:
    key = str(uuid.uuid4())
    first = post(rest, CONVERSATIONS, SEED_BODY, **{"idempotency-key": key})
    retry_header = post(rest, CONVERSATIONS, SEED_BODY, **{"idempotency-key": key})
    retry_body = post(rest, CONVERSATIONS, {**SEED_BODY, "request_id": key})

    assert first.status == retry_header.status == retry_body.status == 200
    assert first.body == retry_header.body == retry_body.body


def test_request_id_reused_for_another_question_is_409(rest: ServiceProcess) -> None:
    key = str(uuid.uuid4())
    assert post(rest, CONVERSATIONS, {**SEED_BODY, "request_id": key}).status == 200
    reused = post(rest, CONVERSATIONS, {**SEED_BODY, "question": "Other?", "request_id": key})
    assert_status_body(reused, 409, 6, "was already used for a different request")


def test_request_id_and_header_must_agree(rest: ServiceProcess) -> None:
    body = {**SEED_BODY, "request_id": str(uuid.uuid4())}
    response = post(rest, CONVERSATIONS, body, **{"idempotency-key": str(uuid.uuid4())})
    body = assert_status_body(response, 400, 3, "request_id: differs from the Idempotency-Key")
    assert body["details"][0]["field_violations"][0]["field"] == "request_id"


def test_envoy_stops_when_the_service_is_killed(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, rest=True, demo=True) as service:
        found = re.search(r"Envoy pid (\d+)", service.log())
        assert found is not None
        envoy_pid = int(found.group(1))
        arguments = Path(f"/proc/{envoy_pid}/cmdline").read_bytes().split(b"\0")
        envoy_dir = Path(arguments[arguments.index(b"--config-path") + 1].decode()).parent
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{envoy_pid}").exists():
            time.sleep(0.1)
        envoy_alive = Path(f"/proc/{envoy_pid}").exists()
        if envoy_alive:  # do not leave it behind: stop it by its PID
            os.kill(envoy_pid, signal.SIGKILL)
    shutil.rmtree(envoy_dir)  # the service, killed, could not remove it
    assert not envoy_alive


def test_concurrent_retries_over_rest_and_grpc_store_one_conversation(rest: ServiceProcess) -> None:
    key = str(uuid.uuid4())
    body = {**SEED_BODY, "question": f"Concurrent retry {key}"}

    def over_rest(_: int) -> int:
        response = post(rest, CONVERSATIONS, body, **{"idempotency-key": key})
        assert response.status == 200, response.body
        return int(response.json()["id"])

    def over_grpc(_: int) -> int:
        with grpc.insecure_channel(rest.address) as channel:
            created = pb_grpc.ConversationServiceStub(channel).CreateConversation(
                pb.CreateConversationRequest(trkref="D10", request_id=key, **body),
                timeout=10,
                metadata=[("authorization", DEMO)],
            )
        return int(created.id)

    with ThreadPoolExecutor(max_workers=12) as pool:
        ids = list(pool.map(over_rest, range(6), timeout=60))
        ids += list(pool.map(over_grpc, range(6), timeout=60))

    assert len(set(ids)) == 1
    assert stored_questions(database_of(rest), body["question"]) == {body["question"]: ids[:1]}
