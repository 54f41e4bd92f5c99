"""The real `conversation-service` process, driven by grpcurl and a Python client."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import (
    basic_authorization,
    cli,
    create_key,
    opened_store,
    organisation_with_key,
)
from server.package_data import MIGRATIONS
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, grpcurl

SEED_JSON = (
    '{"trkref":"D10","first_name":"A shopper","question":"How is this product?",'
    '"locale":"en-GB","sku":"AIPTPDV5700"}'
)
CREATE = "conversations.v4.ConversationService/CreateConversation"


@pytest.fixture
def credentials(database_url: str) -> tuple[str, str]:
    """A key for D10: the demo key (`serve --demo`) on a fresh embedded database, else one made
    with the CLI."""
    if database_url.startswith("sqlite"):
        return DEMO_CREDENTIALS
    return organisation_with_key(database_url)


@pytest.fixture
def auth(credentials: tuple[str, str]) -> list[str]:
    return [f"authorization: {basic_authorization(*credentials)}"]


@pytest.fixture
def service(
    database_url: str, tmp_path: Path, credentials: tuple[str, str]
) -> Iterator[ServiceProcess]:
    """`serve` started on the database; the test waits for it with `with service:`. Stopped
    by its PID after the test, whether or not the test did."""
    process = ServiceProcess(
        tmp_path, ["--database-url", database_url], demo=database_url.startswith("sqlite")
    )
    try:
        yield process
    finally:
        process.stop()


def test_grpcurl_lists_describes_and_creates_the_seed_example(
    service: ServiceProcess, auth: list[str]
) -> None:
    with service:
        listed = grpcurl(service.address, "list")
        described = grpcurl(
            service.address, "describe", "conversations.v4.CreateConversationRequest"
        )
        created = grpcurl(service.address, CREATE, data=SEED_JSON, headers=auth)

    assert listed.stdout.split() == [
        "conversations.v4.ConversationService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    assert "optional string locale = 4;" in described.stdout
    assert "1 to 5000 characters" in described.stdout
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["id"] >= 1
    assert body["first_name"] == "A shopper"
    assert body["retailer_locale"] == "en-GB"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])


def test_grpcurl_shows_errors(service: ServiceProcess, auth: list[str]) -> None:
    with service:
        unknown = grpcurl(
            service.address, CREATE, data=SEED_JSON.replace("D10", "D11"), headers=auth
        )
        invalid = grpcurl(
            service.address, CREATE, data='{"trkref":"D10","locale":"en GB"}', headers=auth
        )
        anonymous = grpcurl(service.address, CREATE, data=SEED_JSON)

    assert "Code: Unauthenticated" in anonymous.stderr
    assert unknown.returncode != 0
    assert "Code: NotFound" in unknown.stderr
    assert "Code: InvalidArgument" in invalid.stderr
    for field in ("first_name", "question", "sku", "locale"):
        assert f'"field":"{field}"' in invalid.stderr


def test_python_client_create_is_stored(
    service: ServiceProcess, database_url: str, auth: list[str]
) -> None:
    request = pb.CreateConversationRequest(
        trkref="D10", first_name="Zoë", question="Is it\nwaterproof? 🌧", sku="AIPTPDV5700"
    )
    with service, grpc.insecure_channel(service.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        metadata = [tuple(auth[0].split(": ", 1))]
        responses = [
            stub.CreateConversation(request, timeout=10, metadata=metadata) for _ in range(3)
        ]
        exit_code = service.stop()

    assert exit_code == 0
    assert len({r.id for r in responses}) == 3
    with opened_store(database_url) as store:
        stored = store.get_conversation(responses[0].id)
        assert store.count_conversations() == 3
    assert stored is not None
    assert (stored.first_name, stored.question, stored.locale) == (
        "Zoë",
        "Is it\nwaterproof? 🌧",
        "en-GB",
    )
    assert int(stored.created_at.timestamp()) == responses[0].created_at.seconds
    assert "received SIGTERM" in service.log()
    assert '"method": "/conversations.v4.ConversationService/CreateConversation"' in service.log()


def test_fresh_embedded_database_gets_the_demo_organisation_and_key(tmp_path: Path) -> None:
    demo = [f"authorization: {basic_authorization(*DEMO_CREDENTIALS)}"]
    with ServiceProcess(tmp_path, demo=True) as service:
        created = grpcurl(service.address, CREATE, data=SEED_JSON, headers=demo)
    assert "demo API key" in service.log()
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "var" / "conversations.db").exists()
    listed = cli(f"sqlite:///{tmp_path}/var/conversations.db", "organisations", "list")
    assert listed.stdout == "D10\ten-GB\tpost\tDemo retailer\n"


def test_organisations_cli_adds_lists_and_refuses_duplicates(database_url: str) -> None:
    first = cli(
        database_url, "organisations", "add", "R2", "--name", "Shop Two", "--locale", "fr-FR"
    )
    again = cli(database_url, "organisations", "add", "R2", "--name", "Other", "--locale", "fr-FR")
    bad = cli(database_url, "organisations", "add", "R 3", "--name", "", "--locale", "french")
    listed = cli(database_url, "organisations", "list")

    assert first.returncode == 0
    assert first.stdout == "added organisation R2 (fr-FR, pre-moderated): Shop Two\n"
    assert again.returncode == 1
    assert "organisation 'R2' already exists" in again.stderr
    assert bad.returncode == 1
    assert "trkref:" in bad.stderr and "name:" in bad.stderr and "locale:" in bad.stderr
    assert listed.stdout == "R2\tfr-FR\tpre\tShop Two\n"


def test_migrate_reports_what_it_applied(database_url: str) -> None:
    first = cli(database_url, "migrate")
    second = cli(database_url, "migrate")
    assert first.returncode == second.returncode == 0
    assert second.stdout == "the schema is up to date\n"
    if database_url.startswith("sqlite"):
        every = sorted(path.stem for path in MIGRATIONS.glob("[0-9]*.py"))
        assert every[:3] == ["0001_initial", "0002_api_keys", "0003_idempotent_creates"]
        assert first.stdout == f"applied: {', '.join(every)}\n"


def test_without_demo_a_fresh_database_gets_no_organisation_nor_key(tmp_path: Path) -> None:
    demo = [f"authorization: {basic_authorization(*DEMO_CREDENTIALS)}"]
    with ServiceProcess(tmp_path) as service:
        refused = grpcurl(service.address, CREATE, data=SEED_JSON, headers=demo)
    database_url = f"sqlite:///{tmp_path}/var/conversations.db"
    assert "Code: Unauthenticated" in refused.stderr
    assert "demo" not in service.log()
    assert cli(database_url, "keys", "list").stdout == ""
    assert cli(database_url, "organisations", "list").stdout == ""


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as first:
        second = ServiceProcess(tmp_path, ["--grpc-address", first.address])
        try:
            exit_code = second.process.wait(timeout=30)
        finally:
            second.stop()
        first.wait_until_serving(timeout=5)  # the first one goes on serving
    assert exit_code == 1
    assert f"Failed to bind to address {first.address}" in second.log()


def test_keys_cli_creates_lists_and_revokes(database_url: str) -> None:
    added = cli(database_url, "organisations", "add", "K1", "--name", "Keyed", "--locale", "en-GB")
    assert added.returncode == 0, added.stderr
    key_id, secret = create_key(database_url, "K1")
    unknown_org = cli(database_url, "keys", "create", "--organisation", "NOPE")
    active = cli(database_url, "keys", "list")
    revoked = cli(database_url, "keys", "revoke", key_id)
    again = cli(database_url, "keys", "revoke", key_id)
    after = cli(database_url, "keys", "list")

    assert key_id.startswith("key_") and len(secret) >= 40
    assert unknown_org.returncode == 1
    assert "organisation 'NOPE' does not exist" in unknown_org.stderr
    assert re.fullmatch(
        rf"{key_id}\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\tactive\tK1\tshopper\n", active.stdout
    )
    assert revoked.stdout == f"revoked {key_id}\n"
    assert again.returncode == 1 and f"no active API key '{key_id}'" in again.stderr
    assert "\trevoked 20" in after.stdout
    assert secret not in active.stdout + after.stdout
