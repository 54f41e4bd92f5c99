"""The generated OpenAPI description, run against the live REST endpoint (schemathesis)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from harness.support import basic_authorization
from server.package_data import OPENAPI
from server.service.domain import ORDERS
from server.service.errors import Reason
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess

schema = schemathesis.openapi.from_path(OPENAPI)
# What the REST API promises: never a 5xx, only documented statuses and content
# types, bodies and headers as described. Not schemathesis' 405 for unknown methods: the
# v4 API answers 404 there, and bounds (lengths, language tags) are in the
# field descriptions, not in the schema.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_live_api_matches_its_description(
    case: schemathesis.Case[Any], rest: ServiceProcess
) -> None:
    """No 5xx, every status documented, every body as described; valid and invalid input."""
    if case.path_parameters and len(repr(case.body)) % 4:
        # Mostly the demo organisation, so that creates succeed too.
        case.path_parameters["trkref"] = "D10"
    authorization = basic_authorization(*DEMO_CREDENTIALS)
    case.call_and_validate(
        base_url=rest.base_url, headers={"authorization": authorization}, checks=CHECKS
    )


def test_the_description_declares_what_clients_rely_on() -> None:
    """Where to send requests, the license, the Idempotency-Key header where request_id is,
    the headers of 401, 429 and 503, every error docs/api.md describes, conditional reads and
    HEAD, the probes, and typed values."""
    document = json.loads(OPENAPI.read_text())
    operations = {
        operation["operationId"]: operation
        for methods in document["paths"].values()
        for operation in methods.values()
    }
    create, answer = operations["CreateConversation"], operations["CreateAnswer"]
    listing = operations["ListConversations"]
    schemas = document["components"]["schemas"]

    assert document["servers"][0]["url"] == "/"
    assert document["info"]["license"]["name"]
    for idempotent in (create, answer):
        assert "Idempotency-Key" in {p["name"] for p in idempotent["parameters"]}
    assert "Idempotency-Key" not in {p["name"] for p in listing["parameters"]}
    api = {name: op for name, op in operations.items() if op["tags"] != ["Probes"]}
    for name, operation in api.items():
        responses = operation["responses"]
        assert set(responses) >= {"400", "401", "404", "408", "429", "431", "500", "503", "504"}
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "Retry-After" in responses["429"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
        assert ("415" in responses) == ("requestBody" in operation), name
    for read in ("GetConversation", "ListConversations", "ListAnswers"):
        responses = operations[read]["responses"]
        assert "If-None-Match" in {p["name"] for p in operations[read]["parameters"]}
        assert {"ETag", "Cache-Control"} <= set(responses["200"]["headers"])
        assert "content" not in responses["304"]
        head = operations[f"{read}Head"]
        assert head["parameters"] == operations[read]["parameters"]
        assert set(head["responses"]) == set(responses)
        assert all("content" not in answer for answer in head["responses"].values())
    assert operations["Liveness"]["security"] == operations["Readiness"]["security"] == []
    assert set(operations["Readiness"]["responses"]) >= {"200", "503"}
    [order_by] = [p for p in listing["parameters"] if p["name"] == "order_by"]
    assert set(order_by["schema"]["enum"]) == set(ORDERS)
    assert schemas["Answer"]["properties"]["response_type"]["enum"] == ["owner", "retailer"]
    reasons = schemas["FieldViolation"]["properties"]["reason"]["enum"]
    assert reasons == [reason.value for reason in Reason]
