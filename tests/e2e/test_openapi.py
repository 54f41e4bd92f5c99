"""The generated OpenAPI description, run against the live REST endpoint (schemathesis)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from server.package_data import OPENAPI
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess
from tests.support import basic_authorization

schema = schemathesis.openapi.from_path(OPENAPI)
# What the REST API promises: never a 5xx, only documented statuses and content
# types, bodies as described. Not schemathesis' 405 for unknown methods: the
# v4 API answers 404 there, and bounds (lengths, language tags) are in the
# field descriptions, not in the schema.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
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
