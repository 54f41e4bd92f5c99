"""The contract as a generated client sees it: a client that `openapi-python-client` generates
from the generated openapi.json, offline, runs the README's example and every error case it can
send against the real service behind Envoy."""

from __future__ import annotations

import base64
import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from server.package_data import OPENAPI
from server.service.domain import ORDERS
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess

GENERATOR = str(Path(sys.executable).parent / "openapi-python-client")
PACKAGE = "v4_generated_client"
# The README's create example.
EXAMPLE = {
    "first_name": "A shopper",
    "question": "How is this product?",
    "locale": "en-GB",
    "sku": "AIPTPDV5700",
}


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, imported; no network needed, no post-processing."""
    root = tmp_path_factory.mktemp("client")
    config = root / "config.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    arguments = ["--path", str(OPENAPI), "--meta", "none", "--config", str(config)]
    generated = subprocess.run(
        [GENERATOR, "generate", *arguments, "--output-path", str(root / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root)},  # no proxy, no index: offline
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("generated-client")
    limits = ["--rate-limit", "1", "--rate-burst", "200"]
    with ServiceProcess(workdir, limits, rest=True, demo=True) as service:
        yield service


class Api:
    """The generated client's modules and clients, by the names a reader expects."""

    def __init__(self, package: ModuleType, base_url: str) -> None:
        def module(name: str) -> Any:
            return importlib.import_module(f"{package.__name__}.{name}")

        self.create = module("api.conversation_service.create_conversation")
        self.get = module("api.conversation_service.get_conversation")
        self.list = module("api.conversation_service.list_conversations")
        self.models = module("models")
        self.unset = module("types").UNSET
        self.token = base64.b64encode(":".join(DEMO_CREDENTIALS).encode()).decode()
        self._package, self._base_url = package, base_url
        self.demo = self.authenticated()
        wrong = base64.b64encode(b"demo:not-the-secret").decode()
        self.wrong = package.AuthenticatedClient(base_url, token=wrong, prefix="Basic")
        self.anonymous = package.Client(base_url)

    def authenticated(self, **headers: str) -> Any:
        """A client of its own with the demo key: with_headers changes the client it is
        called on."""
        return self._package.AuthenticatedClient(
            self._base_url, token=self.token, prefix="Basic", headers=headers
        )

    def body(self, **fields: Any) -> Any:
        return self.models.CreateConversationRequestBody(**{**EXAMPLE, **fields})


@pytest.fixture(scope="module")
def api(client_package: ModuleType, rest: ServiceProcess) -> Api:
    return Api(client_package, rest.base_url)


def status_of(response: Any, http_status: int, grpc_code: int) -> Any:
    """The google.rpc.Status the client parsed from an error response, checked."""
    assert response.status_code == http_status, response.content
    parsed = response.parsed
    assert type(parsed).__name__ == "Status", response.content  # a documented status
    assert parsed.code == grpc_code
    return parsed


def violations(status: Any) -> list[tuple[str, str]]:
    """(field, reason) of each field violation in a Status' BadRequest, as the client types them."""
    [detail] = status.details
    assert detail.type_ == "type.googleapis.com/google.rpc.BadRequest"
    assert all(v.description for v in detail.field_violations)
    return [(v.field, v.reason) for v in detail.field_violations]


def test_only_fields_marked_required_are_required_in_the_description() -> None:
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    assert schemas["CreateConversationRequestBody"]["required"] == ["first_name", "question", "sku"]
    assert schemas["FieldViolation"]["required"] == ["field", "description", "reason"]


def test_the_readme_example_creates_without_a_request_id(api: Api) -> None:
    body = api.body()
    assert body.request_id is api.unset  # optional: a client may leave it out
    response = api.create.sync_detailed("D10", client=api.demo, body=body)
    assert response.status_code == 200, response.content
    created = response.parsed
    assert isinstance(created, api.models.Conversation)
    assert (created.first_name, created.question, created.retailer_locale) == (
        "A shopper",
        "How is this product?",
        "en-GB",
    )
    got = api.get.sync_detailed(created.id, client=api.demo, trkref="D10").parsed
    assert isinstance(got, api.models.Conversation) and got.id == created.id
    page = api.list.sync_detailed("D10", client=api.demo, sku="AIPTPDV5700").parsed
    assert isinstance(page, api.models.ListConversationsResponse)
    assert created.id in [c.id for c in page.conversations]


def test_invalid_fields_are_400_with_a_reason_each(api: Api) -> None:
    body = api.body(first_name="\u200b", question="x" * 5001, locale="english", sku="a\x07")
    response = api.create.sync_detailed("D10", client=api.demo, body=body)
    assert violations(status_of(response, 400, 3)) == [
        ("first_name", "REQUIRED"),
        ("question", "TOO_LONG"),
        ("sku", "CONTROL_CHARACTER"),
        ("locale", "NOT_A_LANGUAGE_TAG"),
    ]
    response = api.create.sync_detailed("D 10", client=api.demo, body=api.body())
    assert violations(status_of(response, 400, 3)) == [("trkref", "NOT_A_TRKREF")]
    response = api.create.sync_detailed("D10", client=api.demo, body=api.body(request_id="nope"))
    assert violations(status_of(response, 400, 3)) == [("request_id", "NOT_A_UUID")]


def test_idempotency_key_conflicts_are_400(api: Api, rest: ServiceProcess) -> None:
    body = api.body(request_id=str(uuid.uuid4()))
    header = api.authenticated(**{"Idempotency-Key": str(uuid.uuid4())})
    response = api.create.sync_detailed("D10", client=header, body=body)
    assert violations(status_of(response, 400, 3)) == [("request_id", "IDEMPOTENCY_KEY_MISMATCH")]
    # Two headers that differ: beyond what the generated client sends, so httpx itself.
    two = [("Idempotency-Key", str(uuid.uuid4())) for _ in range(2)]
    raw = httpx.post(
        f"{rest.base_url}/v4/organisations/D10/conversations",
        json=EXAMPLE,
        headers=[*two, ("Authorization", f"Basic {api.token}")],
        timeout=30,
    )
    parsed = api.models.Status.from_dict(raw.json())
    assert raw.status_code == 400 and parsed.code == 3
    assert violations(parsed) == [("request_id", "IDEMPOTENCY_KEY_MISMATCH")]


def test_reads_with_bad_parameters_are_400(api: Api) -> None:
    negative = api.list.sync_detailed("D10", client=api.demo, sku="S", page_size=-1)
    assert violations(status_of(negative, 400, 3)) == [("page_size", "NEGATIVE")]
    # The client types order_by: it offers the orders there are, and only those.
    order_by = api.models.ListConversationsOrderBy
    assert {order.value for order in order_by} == set(ORDERS)
    order = api.list.sync_detailed("D10", client=api.demo, sku="S", order_by=order_by.RELEVANCE)
    assert violations(status_of(order, 400, 3)) == [("order_by", "SEARCH_REQUIRED")]
    token = api.list.sync_detailed("D10", client=api.demo, sku="S", page_token="forged")
    assert violations(status_of(token, 400, 3)) == [("page_token", "NOT_A_PAGE_TOKEN")]
    blank = api.list.sync_detailed("D10", client=api.demo, sku=" ")
    assert violations(status_of(blank, 400, 3)) == [("sku", "REQUIRED")]


def test_missing_or_wrong_credentials_are_401(api: Api) -> None:
    for client in (api.anonymous, api.wrong):
        response = api.create.sync_detailed("D10", client=client, body=api.body())
        status_of(response, 401, 16)
        assert response.headers["www-authenticate"] == 'Basic realm="Platform API v4"'


def test_unknown_organisation_and_conversation_are_404(api: Api) -> None:
    status_of(api.create.sync_detailed("E20", client=api.demo, body=api.body()), 404, 5)
    status_of(api.get.sync_detailed(4_000_000_000, client=api.demo, trkref="D10"), 404, 5)
    status_of(api.list.sync_detailed("E20", client=api.demo, sku="S"), 404, 5)


def test_a_request_id_reused_for_another_question_is_409(api: Api) -> None:
    request_id = str(uuid.uuid4())
    first = api.create.sync_detailed("D10", client=api.demo, body=api.body(request_id=request_id))
    retry = api.create.sync_detailed("D10", client=api.demo, body=api.body(request_id=request_id))
    other = api.body(request_id=request_id, question="Another question?")
    assert first.status_code == retry.status_code == 200
    assert first.parsed.id == retry.parsed.id
    status_of(api.create.sync_detailed("D10", client=api.demo, body=other), 409, 6)


def test_a_body_over_the_limit_is_413(api: Api) -> None:
    response = api.create.sync_detailed(
        "D10", client=api.demo, body=api.body(question="x" * 70_000)
    )
    assert response.status_code == 413
    status = json.loads(response.content)
    assert (status["code"], status["details"]) == (8, [])
    assert status["message"].strip()


def test_over_the_rate_limit_is_429(api: Api) -> None:
    codes = []
    for _ in range(300):  # the burst is 200, refilled at 1 a second
        response = api.list.sync_detailed("D10", client=api.demo, sku="S")
        codes.append(response.status_code)
        if response.status_code == 429:
            status_of(response, 429, 8)
            break
    assert codes[-1] == 429
