"""Processes that migrate one PostgreSQL database at once take turns."""

from __future__ import annotations

import subprocess
import time

import psycopg2
from playhouse.migrations import Runner

from harness.databases import fresh_postgres
from harness.support import SERVICE, opened_store
from server.package_data import MIGRATIONS


def test_processes_migrating_at_once_take_turns() -> None:
    # Replicas starting together each migrate. Without turns, one of two such
    # processes fails on the tables the other has created.
    migrations = sorted(path.stem for path in MIGRATIONS.glob("0*.py"))
    for _ in range(3):
        with fresh_postgres("conversations_migrate") as url:
            command = [SERVICE, "migrate", "--database-url", url]
            processes = [
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
                for _ in range(2)
            ]
            outputs = [process.communicate(timeout=60)[0] for process in processes]

            assert [process.returncode for process in processes] == [0, 0], outputs
            applied = [line for output in outputs for line in output.splitlines()
                       if line.startswith("applied: ")]  # fmt: skip
            assert applied == ["applied: " + ", ".join(migrations)], outputs
            assert sum("the schema is up to date" in output for output in outputs) == 1


def test_a_migration_waits_for_a_lock_as_long_as_its_database_timeout() -> None:
    latest = sorted(path.stem for path in MIGRATIONS.glob("0*.py"))[-1]
    with fresh_postgres("conversations_migrate") as url:
        with opened_store(url) as store:
            store.migrate()
            with store.db.connection_context():
                Runner(store.db, str(MIGRATIONS)).down(latest)
        # A long transaction holding every table, say: whichever the migration alters or
        # writes, it waits.
        holder = psycopg2.connect(url)
        cursor = holder.cursor()
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = ", ".join(f'"{name}"' for (name,) in cursor.fetchall())
        cursor.execute(f"LOCK TABLE {tables} IN SHARE MODE")
        try:
            command = [SERVICE, "migrate", "--database-url", url]
            refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
            waiting = subprocess.Popen(
                [*command, "--database-timeout", "30"], stdout=subprocess.PIPE, text=True
            )
            time.sleep(3)  # longer than the default timeout, 2 s
        finally:
            holder.rollback()
        output = waiting.communicate(timeout=60)[0]

    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "conversation-service: database unavailable (timed out)" in refused.stderr
    assert waiting.returncode == 0 and output.strip() == f"applied: {latest}"
