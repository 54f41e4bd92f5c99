"""End-to-end fixtures: a database URL for the real process, SQLite file or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import empty_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for a child process: a fresh SQLite file, or the emptied test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/e2e.db"
        return
    empty_postgres(request.getfixturevalue("postgres_database"))
    yield request.getfixturevalue("postgres_url")
