"""What every tier shares: the test run's PostgreSQL database, the Hypothesis profiles, and
the check that no test is skipped unless tests/allowed-skips.txt names it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from harness.databases import fresh_postgres
from server.storage.store import Store

# `ci`, which .ci/run selects with HYPOTHESIS_PROFILE=ci: the same examples on every run
# (no example database to remember a failure by on a clean clone), and a failure printed
# with the blob that replays it (@reproduce_failure). `dev`, the default: random examples.
settings.register_profile("ci", derandomize=True, print_blob=True, database=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ALLOWED_SKIPS = Path(__file__).parent / "allowed-skips.txt"


def allowed_skips() -> set[str]:
    """The test ids allowed-skips.txt names: its lines less comments and blanks."""
    lines = (line.split("#", 1)[0].strip() for line in ALLOWED_SKIPS.read_text().splitlines())
    return {line for line in lines if line}


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With FAIL_ON_SKIP=1 (.ci/run), a skipped test that allowed-skips.txt does not name
    fails the run: a test that cannot run here is a failure to see, not a quiet pass."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("FAIL_ON_SKIP") != "1" or reporter is None:
        return
    allowed = allowed_skips()
    unexpected = [
        report.nodeid
        for report in reporter.stats.get("skipped", [])
        if report.nodeid not in allowed and report.nodeid.split("[", 1)[0] not in allowed
    ]
    if unexpected:
        reporter.write_line(
            "skipped, and not in tests/allowed-skips.txt: " + ", ".join(unexpected), red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
