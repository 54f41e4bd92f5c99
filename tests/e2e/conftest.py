"""End-to-end: the installed `conversation-service` in child processes, with real Envoy.

Every test here is marked `e2e`: `pytest -m "not e2e"` leaves them out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.databases import empty_postgres
from tests.e2e.browser import DOCS_IMAGES
from tests.e2e.service import ServiceProcess

E2E = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for a child process: a fresh SQLite file, or the emptied test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/e2e.db"
        return
    url = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    yield url


@pytest.fixture(scope="module")
def rest(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The service with REST on, on a fresh embedded database (demo organisation D10), one
    per test module; a module adds what it needs by a fixture of the same name over it."""
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with ServiceProcess(workdir, rest=True, demo=True) as service:
        yield service


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests save screenshots: docs/images/ with SCREENSHOTS_TO_DOCS=1 (to update the
    documentation's pictures), else a temporary directory, so a run leaves the checkout as is."""
    if os.environ.get("SCREENSHOTS_TO_DOCS") == "1":
        return DOCS_IMAGES
    return tmp_path_factory.mktemp("screenshots")
