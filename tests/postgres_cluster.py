"""A PostgreSQL cluster of the tests' own: initdb in a temporary directory, on 127.0.0.1 only.

Run as a module it wraps the test command: when nothing answers on
127.0.0.1:5432 it starts a private cluster for the run, points the tests at it
(CONVERSATION_SERVICE_TEST_POSTGRES) and removes it after:

    python -m tests.postgres_cluster -- pytest ...
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.service import free_port

# PostgreSQL refuses to run as root; as root, run its programs as this user.
PG_USER = "postgres"
ADMIN_URL_VARIABLE = "CONVERSATION_SERVICE_TEST_POSTGRES"


def server_bin_dir() -> Path:
    """Where initdb and pg_ctl are: $CONVERSATION_SERVICE_TEST_PG_BIN, `pg_config --bindir`,
    or the newest of the versions installed under /usr/lib/postgresql."""
    candidates: list[Path] = []
    if os.environ.get("CONVERSATION_SERVICE_TEST_PG_BIN"):
        candidates.append(Path(os.environ["CONVERSATION_SERVICE_TEST_PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    installed = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in installed), key=_version, reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("no PostgreSQL server binaries (initdb) found; install `postgresql`")


def _version(bin_dir: Path) -> float:
    try:
        return float(bin_dir.parent.name)
    except ValueError:
        return 0.0


def answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


class PostgresCluster:
    """initdb in a temporary directory; start, stop (immediately, as a crash) and start again."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or server_bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="conversation-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "-A", "trust", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        command: Sequence[str] = [str(self.bin / program), *args]
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


def run_with_postgres(command: Sequence[str]) -> int:
    """Run `command`; with a private cluster for it when 127.0.0.1:5432 does not answer."""
    if os.environ.get(ADMIN_URL_VARIABLE) or answers("127.0.0.1", 5432):
        return subprocess.call(command)
    cluster = PostgresCluster()
    try:
        cluster.start()
        print(f"nothing answers on 127.0.0.1:5432: the tests use {cluster.url}", flush=True)
        return subprocess.call(command, env={**os.environ, ADMIN_URL_VARIABLE: cluster.url})
    finally:
        cluster.remove()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    sys.exit(run_with_postgres(arguments))
