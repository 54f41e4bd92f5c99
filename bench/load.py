"""The load generators: h2load for gRPC, wrk for REST; each run bounded in count and time."""

from __future__ import annotations

import os
import re
import signal
import statistics
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

# Every loop is bounded by a request count; this caps its time as well.
TIME_LIMIT_SECONDS = 60


@dataclass(frozen=True)
class Result:
    """What a load run saw: requests sent, the successful ones, latency in ms."""

    requests: int
    succeeded: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # Each request's latency (h2load logs them; the wrk script prints them).
    durations_us: tuple[int, ...] = ()

    @property
    def per_second(self) -> float:
        """Successful responses per second: a fast error is not a create."""
        return self.succeeded / self.seconds if self.seconds else 0.0

    @property
    def max_ms(self) -> float:
        """The slowest request: a stall shows here first, and in p99 when it lasts."""
        return max(self.durations_us, default=0) / 1000

    @property
    def errors(self) -> int:
        return self.requests - self.succeeded


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: no compression, 4-byte big-endian length, payload."""
    payload = message.SerializeToString()
    return struct.pack(">BI", 0, len(payload)) + payload


def h2load(
    url: str,
    message: Message,
    *,
    streams: int,
    authorization: str,
    count: int = 0,
    seconds: float = 0,
) -> Result:
    """POST `count` gRPC calls (or as many as fit in `seconds`), one stream per connection.

    h2load sees HTTP statuses only; gRPC statuses are counted from the server's log.
    """
    bound = ["-n", str(count)] if count else ["-D", str(seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        body, per_request = Path(tmp, "body"), Path(tmp, "requests.tsv")
        body.write_bytes(grpc_frame(message))
        grpc_headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        grpc_headers += ["-H", f"authorization: {authorization}"]
        connections = ["-c", str(streams), "-m", "1"]
        log = ["--log-file", str(per_request)]
        output = _run(["h2load", *bound, *connections, "-d", str(body), *grpc_headers, *log, url])
        durations_us = [int(line.split("\t")[2]) for line in per_request.read_text().splitlines()]
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", output)
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    if done is None or finished is None:
        raise RuntimeError(f"unexpected h2load output:\n{output}")
    elapsed = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    p50, p99 = _percentiles(durations_us)
    return Result(int(done[1]), int(done[2]), elapsed, p50, p99, tuple(durations_us))


def merge(results: Sequence[Result]) -> Result:
    """Runs of the same load as one: counts and time added, percentiles over every request."""
    durations = tuple(d for r in results for d in r.durations_us)
    p50, p99 = _percentiles(list(durations))
    return Result(
        requests=sum(r.requests for r in results),
        succeeded=sum(r.succeeded for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=p50,
        p99_ms=p99,
        durations_us=durations,
    )


def wrk(
    url: str,
    json_body: str | None,
    *,
    connections: int,
    authorization: str,
    count: int = 0,
    seconds: float = 0,
    method: str = "",
    status: int = 200,
    if_none_match: str = "",
) -> Result:
    """POST `count` JSON bodies (GET when `json_body` is None, or `method` when given), or
    as many as fit in `seconds`, one thread per connection, with `if_none_match` as
    If-None-Match when given. A response of any other status than `status` is an error.

    Percentiles are those of each request's duration, as h2load's are; a run
    bounded by `seconds` reports none (its threads never finish their quota).
    """
    script = Path(__file__).with_name("request.lua")
    quota = max(1, count // connections) if count else 1 << 40
    limit = f"{round(seconds) if seconds else TIME_LIMIT_SECONDS}s"
    env = {**os.environ, "BENCH_BODY": json_body or "", "BENCH_QUOTA": str(quota)}
    env["BENCH_METHOD"] = method or ("GET" if json_body is None else "POST")
    env["BENCH_AUTHORIZATION"] = authorization
    env["BENCH_STATUS"] = str(status)
    env["BENCH_IF_NONE_MATCH"] = if_none_match
    threads = ["-t", str(connections), "-c", str(connections)]
    command = ["wrk", *threads, "-d", limit, "-s", str(script), url]
    durations_us: list[int] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        lines, threads_done = [], 0
        for line in process.stdout:
            if line.startswith("BENCH durations_us "):
                durations_us += (int(d) for d in line.split()[2].split(","))
                continue
            lines.append(line)
            threads_done += line.startswith("BENCH thread done")
            if threads_done == connections:
                process.send_signal(signal.SIGINT)  # wrk ends early on SIGINT, and reports
        process.wait(timeout=30)
    summary = next((ln for ln in lines if ln.startswith("BENCH summary ")), None)
    if summary is None:
        raise RuntimeError("unexpected wrk output:\n" + "".join(lines))
    fields = {k: int(v) for k, v in (item.split("=") for item in summary.split()[2:])}
    p50, p99 = _percentiles(durations_us)
    return Result(
        requests=fields["requests"] + fields["socket_errors"],
        succeeded=fields["requests"] - fields["unexpected_status"],
        seconds=fields["duration_us"] / 1e6,
        p50_ms=p50,
        p99_ms=p99,
        durations_us=tuple(durations_us),
    )


def _percentiles(durations_us: list[int]) -> tuple[float, float]:
    if len(durations_us) < 2:
        return (0.0, 0.0)
    cuts = statistics.quantiles(durations_us, n=100, method="inclusive")
    return (cuts[49] / 1000, cuts[98] / 1000)


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS + 30, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout
