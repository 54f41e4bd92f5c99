"""Replicas on one PostgreSQL: creates spread over two behind `proxy`, none lost, none twice;
votes add up; what one keeps shows what the other writes."""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.databases import empty_postgres
from harness.support import SERVICE, basic_authorization, organisation_with_key, stored_questions
from tests.e2e.load import OK, Load, assert_acknowledged_stored_once, rest_create
from tests.e2e.service import ServiceProcess, free_port, http

CREATE_LOG_LINE = '"method": "/conversations.v4.ConversationService/CreateConversation"'


def logged_creates(replica: ServiceProcess) -> list[tuple[datetime.datetime, int]]:
    """The time (UTC) and process of each create's access log line."""
    lines = [json.loads(line) for line in replica.log().splitlines() if CREATE_LOG_LINE in line]
    return [(datetime.datetime.fromisoformat(line["time"]), line["pid"]) for line in lines]


def creates_logged_before(replica: ServiceProcess, moment: datetime.datetime) -> int:
    """The creates a replica's access log has for calls that ended before `moment`.

    Each replica writes its access log every FLUSH_INTERVAL, each at its own
    time: counted up to one moment, two logs cover the same stretch of time.
    """
    return sum(1 for stamped, _ in logged_creates(replica) if stamped < moment)


def wait_until_logged_past(replica: ServiceProcess, moment: datetime.datetime) -> None:
    """Block until each process that logged a create before `moment` has logged one at or
    after it: each process writes its lines in order, so every line before is written."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before: set[int] = set()
        after: set[int] = set()
        for stamped, process in logged_creates(replica):
            (before if stamped < moment else after).add(process)
        if before <= after:
            return
        time.sleep(0.05)  # polling the log
    raise TimeoutError(f"a process of {replica.address} logged nothing past {moment} in 30s")


def start_proxy(workdir: Path, http_address: str, upstreams: list[str]) -> subprocess.Popen[bytes]:
    upstream_args = [arg for upstream in upstreams for arg in ("--upstream", upstream)]
    log = (workdir / "proxy.log").open("w")
    process = subprocess.Popen(
        [SERVICE, "proxy", "--http-address", http_address, *upstream_args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, (workdir / "proxy.log").read_text()
        try:
            http("GET", f"http://{http_address}/")
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError("the proxy did not listen in 30s")


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    return process.wait(timeout=30)


def test_creates_spread_over_two_replicas_and_survive_stopping_one(
    postgres_url: str, tmp_path: Path
) -> None:
    empty_postgres(postgres_url)
    authorization = basic_authorization(*organisation_with_key(postgres_url))
    args = ["--database-url", postgres_url, "--drain-delay", "2"]
    replicas = [ServiceProcess(tmp_path, args) for _ in range(2)]
    http_address = f"127.0.0.1:{free_port()}"
    with replicas[0], replicas[1]:
        proxy = start_proxy(tmp_path, http_address, [r.address for r in replicas])
        try:
            with Load([rest_create(f"http://{http_address}", authorization)] * 6) as load:
                load.wait_for_successes(200)
                moment = datetime.datetime.now(datetime.UTC)
                for replica in replicas:
                    wait_until_logged_past(replica, moment)
                spread = [creates_logged_before(r, moment) for r in replicas]
                replica_exit = replicas[0].stop()
                load.wait_for_successes(200)
                calls = load.stop()
        finally:
            proxy_exit = stop(proxy)
    stored = stored_questions(postgres_url)

    assert min(spread) > 0.3 * sum(spread), spread
    assert replica_exit == 0 and proxy_exit == 0
    assert_acknowledged_stored_once(calls, stored)
    # A call racing the stopping replica's GOAWAY may be refused (503, or 499
    # for grpc's CANCELLED); it never ran, so it is not stored and may be retried.
    failures = [call for call in calls if call.outcome != OK]
    print(f"spread {spread}; {len(calls)} calls, {len(failures)} refused")  # pytest -s shows it
    assert {call.outcome for call in failures} <= {"HTTP 503", "HTTP 499"}
    assert not [call for call in failures if call.question in stored]


def test_votes_on_two_replicas_add_up_exactly(postgres_url: str, tmp_path: Path) -> None:
    empty_postgres(postgres_url)
    metadata = (("authorization", basic_authorization(*organisation_with_key(postgres_url))),)
    replicas = [ServiceProcess(tmp_path, ["--database-url", postgres_url]) for _ in range(2)]
    with replicas[0], replicas[1]:
        channels = [grpc.insecure_channel(r.address) for r in replicas]
        stubs = [pb_grpc.ConversationServiceStub(c) for c in channels]
        question = stubs[0].CreateConversation(
            pb.CreateConversationRequest(trkref="D10", first_name="A", question="Q?", sku="S"),
            metadata=metadata,
            timeout=10,
        )

        def voting(thread: int) -> None:
            for n in range(100):
                # Each voter votes once on each replica, at about the same time.
                for voter_id in ("", f"voter-{thread}-{n // 2}"):
                    stubs[(thread + n) % 2].IncrementConversationHelpful(
                        pb.IncrementConversationHelpfulRequest(
                            id=question.id, trkref="D10", voter_id=voter_id
                        ),
                        metadata=metadata,
                        timeout=30,
                    )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(voting, range(8)))
        found = stubs[1].GetConversation(
            pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=metadata, timeout=10
        )
        for channel in channels:
            channel.close()
    # 800 anonymous votes, and 400 voters who voted twice each.
    assert found.helpful == 800 + 400


def test_what_one_replica_keeps_shows_what_the_other_writes_at_once(
    postgres_url: str, tmp_path: Path
) -> None:
    empty_postgres(postgres_url)
    metadata = (("authorization", basic_authorization(*organisation_with_key(postgres_url))),)
    replicas = [ServiceProcess(tmp_path, ["--database-url", postgres_url]) for _ in range(2)]
    with replicas[0], replicas[1]:
        channels = [grpc.insecure_channel(r.address) for r in replicas]
        reader, writer = (pb_grpc.ConversationServiceStub(c) for c in channels)
        asked = pb.ListConversationsRequest(trkref="D10", sku="S")

        def listed() -> pb.ListConversationsResponse:
            found: pb.ListConversationsResponse = reader.ListConversations(
                asked, metadata=metadata, timeout=10
            )
            return found

        def create(question: str) -> pb.Conversation:
            request = pb.CreateConversationRequest(
                trkref="D10", first_name="A", question=question, sku="S"
            )
            created: pb.Conversation = writer.CreateConversation(
                request, metadata=metadata, timeout=10
            )
            return created

        def detail() -> pb.Conversation:
            request = pb.GetConversationRequest(id=first.id, trkref="D10")
            found: pb.Conversation = reader.GetConversation(request, metadata=metadata, timeout=10)
            return found

        first = create("First?")
        seen = [listed(), listed()]  # the second from the reader's read cache
        details = [detail(), detail()]
        writer.IncrementConversationHelpful(
            pb.IncrementConversationHelpfulRequest(id=first.id, trkref="D10"),
            metadata=metadata,
            timeout=10,
        )
        seen.append(listed())
        details.append(detail())
        answer = pb.NewAnswer(response="Yes.", first_name="An owner")
        answered = writer.CreateAnswer(
            pb.CreateAnswerRequest(conversation_id=first.id, trkref="D10", answer=answer),
            metadata=metadata,
            timeout=10,
        )
        seen.append(listed())
        writer.IncrementAnswerUnhelpful(
            pb.IncrementAnswerUnhelpfulRequest(id=answered.id, trkref="D10"),
            metadata=metadata,
            timeout=10,
        )
        seen.append(listed())
        second = create("Second?")
        seen.append(listed())
        for channel in channels:
            channel.close()
    assert seen[0] == seen[1]
    assert [c.helpful for c in seen[2].conversations] == [1]
    assert [d.helpful for d in details] == [0, 0, 1]
    assert [[a.id for a in c.answers] for c in seen[3].conversations] == [[answered.id]]
    assert seen[3].summary.answers_count == 1
    assert seen[4].conversations[0].answers[0].unhelpful == 1
    assert [c.id for c in seen[5].conversations] == [second.id, first.id]
    assert seen[5].summary.question_count == 2
