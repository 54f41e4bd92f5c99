"""What callers without a key can make the service do, counted in the SQL statements it
sends (conversation_service_database_statements_total):

- a key id that failed lately is refused without asking the database again;
- past an address's allowance of failures, no key is looked up, whatever key ids or
  `x-forwarded-for` the caller sends, over gRPC or through Envoy;
- another organisation's conversation costs what a missing one does.
"""

from __future__ import annotations

import base64
import concurrent.futures
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import grpc

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import basic_authorization, cli, create_key, organisation_with_key
from tests.e2e.service import ServiceProcess, free_port, http

FAILING_CALLS = 1000
STATEMENTS = "conversation_service_database_statements_total"


def statements(metrics_url: str) -> int:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return int(float(next(line.split()[1] for line in text.splitlines()
                          if line.startswith(STATEMENTS + " "))))  # fmt: skip


def serving_with_metrics(
    tmp_path: Path, database_url: str, *args: str, rest: bool = False
) -> tuple[ServiceProcess, str]:
    port = free_port()
    service = ServiceProcess(
        tmp_path,
        ["--database-url", database_url, "--metrics-address", f"127.0.0.1:{port}", *args],
        rest=rest,
    )
    return service, f"http://127.0.0.1:{port}/metrics"


def get_codes(address: str, requests: Sequence[tuple[int, str, str]]) -> Counter[str]:
    """Status codes of GetConversation(id, trkref) with each authorization, 200 at a time."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        calls = [
            stub.GetConversation.future(
                pb.GetConversationRequest(id=conversation_id, trkref=trkref),
                metadata=metadata,
                timeout=30,
            )
            for conversation_id, trkref, authorization in requests
            for metadata in [(("authorization", authorization),)]
        ]
        return Counter(call.code().name for call in calls)


def in_waves(address: str, requests: Sequence[tuple[int, str, str]]) -> Counter[str]:
    """get_codes() over the requests, 200 in flight at a time."""
    codes: Counter[str] = Counter()
    for start in range(0, len(requests), 200):
        codes += get_codes(address, requests[start : start + 200])
    return codes


def unknown(key_id: str) -> str:
    return "Basic " + base64.b64encode(f"{key_id}:not-its-secret".encode()).decode()


def test_failures_of_one_unknown_key_id_ask_the_database_once(
    database_url: str, tmp_path: Path
) -> None:
    organisation_with_key(database_url)
    # No limit per address: only the memory of failed key ids is at work.
    service, metrics = serving_with_metrics(tmp_path, database_url, "--failed-auth-rate", "0")
    with service:
        before = statements(metrics)
        codes = in_waves(service.address, [(1, "D10", unknown("no-such-key"))] * FAILING_CALLS)
        sent = statements(metrics) - before

    assert codes == {"UNAUTHENTICATED": FAILING_CALLS}
    # A lookup or two, and the health probes and checks of the seconds the calls took.
    assert sent < 50


def test_past_an_address_allowance_no_key_is_looked_up(database_url: str, tmp_path: Path) -> None:
    organisation_with_key(database_url)
    # Failures answered at once: the delay past the allowance is not what is counted here.
    service, metrics = serving_with_metrics(
        tmp_path, database_url, "--processes", "1", "--failed-auth-delay", "0"
    )
    with service:
        before = statements(metrics)
        # Every call a key id of its own, and over gRPC an x-forwarded-for of its own too:
        # the peer decides there.
        requests = [(1, "D10", unknown(f"stranger-{i}")) for i in range(FAILING_CALLS)]
        codes = in_waves(service.address, requests)
        sent = statements(metrics) - before

    assert codes["RESOURCE_EXHAUSTED"] > FAILING_CALLS / 2
    assert codes["UNAUTHENTICATED"] + codes["RESOURCE_EXHAUSTED"] == FAILING_CALLS
    # The allowance's burst of lookups (100), what its rate adds while the calls last, a
    # few statements each, and the health probes: well under one per call.
    assert sent < FAILING_CALLS / 2


def test_forwarded_addresses_a_client_sends_do_not_escape_its_allowance(tmp_path: Path) -> None:
    # Given an allowance of 50 failures that does not refill while the test runs
    url = f"sqlite:///{tmp_path}/strangers.db"
    organisation_with_key(url)
    allowance = ["--failed-auth-burst", "50", "--failed-auth-rate", "0.001"]
    service, _ = serving_with_metrics(
        tmp_path, url, *allowance, "--failed-auth-delay", "0", rest=True
    )
    with service, concurrent.futures.ThreadPoolExecutor(10) as pool:
        # When a client sends 300 REST requests through Envoy, each with a key id and an
        # x-forwarded-for of its own
        rest_statuses = Counter(
            pool.map(
                lambda i: (
                    http(
                        "GET",
                        f"{service.base_url}/v4/conversations/1?trkref=D10",
                        headers={
                            "authorization": unknown(f"rest-{i}"),
                            "x-forwarded-for": forged(i),
                        },
                    ).status
                ),
                range(300),
            )
        )
        # and then as many gRPC calls straight to the gRPC port
        with grpc.insecure_channel(service.address) as channel:
            stub = pb_grpc.ConversationServiceStub(channel)
            grpc_calls = [
                stub.GetConversation.future(
                    pb.GetConversationRequest(id=1, trkref="D10"),
                    metadata=(
                        ("authorization", unknown(f"grpc-{i}")),
                        ("x-forwarded-for", forged(i)),
                    ),
                    timeout=30,
                )
                for i in range(300)
            ]
            grpc_codes = Counter(call.code().name for call in grpc_calls)

    # Then each transport's calls count against one address: over REST, the last entry
    # of x-forwarded-for, which Envoy appends (for a client on its own machine, the
    # machine's address); over gRPC the peer, 127.0.0.1. A failure counts once answered,
    # so the lookups already under way when the allowance runs out may pass it a little.
    assert set(rest_statuses) == {401, 429}
    assert 50 <= rest_statuses[401] < 100
    assert set(grpc_codes) == {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}
    assert 50 <= grpc_codes["UNAUTHENTICATED"] < 100


def forged(i: int) -> str:
    return f"10.{i // 250}.{i % 250}.1"


def test_another_organisation_s_conversation_costs_what_a_missing_one_does(
    database_url: str, tmp_path: Path
) -> None:
    # Given conversations of another organisation, and a key of D10
    ours = basic_authorization(*organisation_with_key(database_url))
    added = cli(
        database_url,
        *("organisations", "add", "B20", "--name", "B", "--locale", "en-GB"),
        *("--moderation", "post"),
    )
    assert added.returncode == 0, added.stderr
    theirs = basic_authorization(*create_key(database_url, "B20"))
    service, metrics = serving_with_metrics(tmp_path, database_url)
    count = 200
    with service, grpc.insecure_channel(service.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        request = pb.CreateConversationRequest(
            trkref="B20", first_name="A shopper", question="Fits?", sku="SKU1"
        )
        their_ids = [
            stub.CreateConversation(request, metadata=(("authorization", theirs),), timeout=10).id
            for _ in range(count)
        ]
        missing_ids = [max(their_ids) + 1000 + i for i in range(count)]
        get_codes(service.address, [(1, "D10", ours)])  # the key is read: not counted below

        # When D10's key asks for each, as D10's
        before = statements(metrics)
        theirs_codes = get_codes(service.address, [(i, "D10", ours) for i in their_ids])
        between = statements(metrics)
        missing_codes = get_codes(service.address, [(i, "D10", ours) for i in missing_ids])
        after = statements(metrics)

    # Then both are NOT_FOUND, and cost the same statements: one each (give or take the
    # health probes and revocation checks running meanwhile)
    assert theirs_codes == missing_codes == {"NOT_FOUND": count}
    assert abs((between - before) - (after - between)) < count / 4
