"""A throwaway PostgreSQL server of a test's own, which the test may stop and start at will.

The machine's cluster on 5432 is shared with other tests and never stopped;
this one lives in a temporary directory, listens on 127.0.0.1 only, and is
stopped by pg_ctl on its data directory at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.e2e.service import free_port

PG_BIN = Path(os.environ.get("CONVERSATION_SERVICE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
# PostgreSQL refuses to run as root; as root, run its programs as this user.
PG_USER = "postgres"


class OwnPostgres:
    """initdb in a temporary directory, then start, stop (immediately) and start again."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conversation-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "-A", "trust", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        command: Sequence[str] = [str(PG_BIN / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", PG_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        log = str(self.dir / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """Stop at once, as a crash would: connections are cut, nothing is waited for."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.is_running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
