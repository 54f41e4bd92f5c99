"""Fixtures every tier above the unit tests shares: the test run's PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.storage.store import Store
from tests.databases import fresh_postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database that lives as long as the test run."""
    with fresh_postgres("conversations_test") as url:
        store = Store.open(url)
        try:
            store.migrate()
        finally:
            store.close()
        yield url
