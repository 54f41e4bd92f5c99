"""kill -9 under load: every create acknowledged to a client is in the database after restart."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from harness.support import basic_authorization, organisation_with_key, stored_questions
from tests.e2e.load import (
    OK,
    Load,
    assert_acknowledged_stored_once,
    grpc_create,
)
from tests.e2e.service import DEMO_AUTHORIZATION, ServiceProcess

THREADS = 6


@pytest.mark.parametrize(
    ("database_url", "synchronous"),
    [("sqlite", "FULL"), ("sqlite", "NORMAL"), ("postgres", "FULL")],
    indirect=["database_url"],
)
def test_kill_9_under_load_loses_no_acknowledged_create(
    database_url: str, tmp_path: Path, synchronous: str
) -> None:
    authorization = DEMO_AUTHORIZATION
    if not database_url.startswith("sqlite"):
        authorization = basic_authorization(*organisation_with_key(database_url))
    args = ["--database-url", database_url, "--sqlite-synchronous", synchronous]
    service = ServiceProcess(tmp_path, args, demo=True)
    with service, Load([grpc_create(service.address, authorization)] * THREADS) as load:
        load.wait_for_successes(150)
        service.process.send_signal(signal.SIGKILL)
        assert service.process.wait(timeout=30) == -signal.SIGKILL
        calls = load.stop()
    with ServiceProcess(tmp_path, args) as restarted:
        after = grpc_create(restarted.address, authorization)("after the restart")
    stored = stored_questions(database_url)

    acknowledged = [call for call in calls if call.outcome == OK]
    print(f"{len(acknowledged)} acknowledged, {len(stored)} stored")  # shown with pytest -s
    assert after[0] == OK
    assert_acknowledged_stored_once(calls, stored)
    # Calls cut off by the kill may or may not have been committed; at most
    # one per client thread was in flight.
    assert len(acknowledged) <= len(stored) <= len(acknowledged) + THREADS
