"""REST through the real Envoy transcoder that `serve` starts: the v4 API's wire format."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from server import storage
from tests.e2e.service import HttpResponse, ServiceProcess, http

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
}
CONVERSATIONS = "/v4/organisations/D10/conversations"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service with REST on, on a fresh embedded database (demo organisation D10)."""
    with ServiceProcess(tmp_path_factory.mktemp("rest"), rest=True) as service:
        yield service


def post(service: ServiceProcess, path: str, body: object, **headers: str) -> HttpResponse:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return http("POST", service.base_url + path, data, {**JSON, **headers})


def assert_status_body(response: HttpResponse, status: int, code: int, message: str) -> Any:
    """A google.rpc.Status JSON body with this HTTP status, gRPC code and message part."""
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert message in body["message"]
    assert isinstance(body["details"], list)
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
            pb.CreateConversationRequest(trkref="D10", **SEED_BODY), timeout=10
        )

    storage.open_database(f"sqlite:///{rest.workdir}/var/conversations.db")
    with storage.session():
        stored = storage.get_conversation(created["id"])
        stored_grpc = storage.get_conversation(via_grpc.id)
    storage.close_database()
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
        ("GET", CONVERSATIONS),
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


def test_authorization_header_reaches_the_service_as_metadata(rest: ServiceProcess) -> None:
    # Until the service checks credentials the header is accepted as it is;
    # what matters here is that Envoy passes it on and the call succeeds.
    response = post(rest, CONVERSATIONS, SEED_BODY, authorization="Basic a2V5OnNlY3JldA==")
    assert response.status == 200


def test_rest_is_on_by_default_and_stops_with_the_service(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, rest=True) as service:
        assert post(service, CONVERSATIONS, SEED_BODY).status == 200
        exit_code = service.stop()
    assert exit_code == 0
    assert "REST serving on" in service.log()
    with pytest.raises(OSError):
        http("GET", service.base_url + "/")


def test_service_exits_non_zero_when_envoy_dies(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, rest=True) as service:
        found = re.search(r"Envoy pid (\d+)", service.log())
        assert found is not None
        os.kill(int(found.group(1)), signal.SIGKILL)
        exit_code = service.process.wait(timeout=30)
    assert exit_code == 1
    assert "Envoy exited" in service.log()
