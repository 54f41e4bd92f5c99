"""Unit tests: no database, no server. The use cases run over the in-memory FakeStorage."""

from __future__ import annotations

import pytest

from harness.support import add_organisation_with_key
from tests.unit.fakes import FakeStorage


@pytest.fixture
def store() -> FakeStorage:
    """The fake with the organisation D10 and CALLER's key, whose secret is TEST_SECRET."""
    store = FakeStorage()
    add_organisation_with_key(store)
    return store
