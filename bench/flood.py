"""Authenticated calls beside a flood of bad credentials, and what checking a key costs.

`make bench` measures the flooded row with the others (bench/run.py); alone,
`.venv/bin/python -m bench.flood` measures gRPC Health/Check and Get on SQLite,
then Get beside the flood, prints their table and ratio, and the time one call's
check of its remembered key takes (the rate limit and the revocation bound).
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Iterator
from pathlib import Path

from bench import dataset, report
from bench.measure import HEALTH, Load, get_call, measure_grpc, service
from bench.report import table
from harness.service import ServiceProcess
from harness.support import opened_store
from server.service.authentication import Authenticator

# The flood: h2load's connections and streams on each, as many as the attacker held.
FLOOD_CONNECTIONS, FLOOD_STREAMS = 50, 10
# Longer than any measurement beside it: the flood is stopped once that ends.
FLOOD_SECONDS = 120
# A key id no database holds, with a secret.
BAD_CREDENTIALS = "Basic " + base64.b64encode(b"no-such-key:not-a-secret").decode()


@contextlib.contextmanager
def flood(server: ServiceProcess, method: str) -> Iterator[None]:
    """h2load calling `method` with credentials of no key, on many streams, until the block ends."""
    frame = Path(server.workdir) / "flood-body"
    frame.write_bytes(b"\0\0\0\0\0")  # an empty message: the call is refused before decoding
    command = [
        "h2load", "-D", str(FLOOD_SECONDS), "-c", str(FLOOD_CONNECTIONS),
        "-m", str(FLOOD_STREAMS), "-d", str(frame),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-H", f"authorization: {BAD_CREDENTIALS}", f"http://{server.address}{method}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def check_seconds(database_url: str, repeat: int = 100_000) -> float:
    """Seconds one call of a key authenticated before spends in Authenticator.admit():
    its rate limit and whether the key was checked against revocations lately."""
    with opened_store(database_url) as store:
        # A limit no run reaches: its bucket is taken from, as a call's is.
        authenticator = Authenticator(store, rate=1e12, burst=1e12)
        caller = authenticator.authenticate("demo", "demo-secret")
        # Each run right after a check, as the service's keep every key checked lately.
        runs = timeit.repeat(
            lambda: authenticator.admit(caller),
            setup=authenticator.check_revocations,
            number=repeat,
            repeat=5,
        )
    return min(runs) / repeat


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="conversation-bench-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir}/conversations.db"
        demo = "Basic " + base64.b64encode(b"demo:demo-secret").decode()
        with service(workdir, url) as server:
            with opened_store(url) as store:
                ids = dataset.seed_answered(store, "BENCH-ANSWERED", 20, 2)
            get = get_call(ids[len(ids) // 2])
            rows = measure_grpc(
                server,
                [Load(f"{report.HEALTH} gRPC Health/Check", HEALTH),
                 Load(f"{report.GET} gRPC Get, SQLite", get)],
                demo,
            )  # fmt: skip
            with flood(server, get[0]):
                rows += measure_grpc(server, [Load(FLOODED_GET_NAME, get)], demo)
        get_row, flooded = rows[1].result, rows[2].result
        assert get_row is not None and flooded is not None
        print(table(rows))
        print(f"\nGet beside the flood / Get alone: {flooded.per_second / get_row.per_second:.2f}")
        check = check_seconds(url)
    print(f"a remembered key's check (rate limit, revocation bound): {check * 1e6:.2f} µs a call")
    return 0


FLOODED_GET_NAME = (
    f"{report.FLOODED_GET} gRPC Get, SQLite, beside {FLOOD_CONNECTIONS * FLOOD_STREAMS} "
    "streams of bad credentials"
)

if __name__ == "__main__":
    sys.exit(main())
