"""The read cache's budget is bytes of memory: a real `serve` process reading the widest
texts (emoji, four bytes a character) grows by no more than the budget and a margin."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import basic
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess

METADATA = basic(*DEMO_CREDENTIALS)
WIDEST = "\U0001f600" * 5000
BUDGET_MIB = 16
# What a process may grow by besides what its cache keeps: a call's own objects and
# messages, and the allocator's slack.
MARGIN_MIB = 8
ORDERS = ("created_at desc", "created_at asc", "helpful desc")


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[ServiceProcess]:
    args = ["--database-url", database_url, "--read-cache-mib", str(BUDGET_MIB)]
    with ServiceProcess(tmp_path, [*args, "--processes", "1"], demo=True) as service:
        yield service


def rss_mib(pid: int) -> float:
    """The resident memory of a process and of its children but Envoy (a worker of serve)."""
    total_kib = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, IndexError):  # ended meanwhile
            continue
        if (int(entry) == pid or parent == pid) and b"envoy" not in command:
            [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
            total_kib += int(line.split()[1])
    return total_kib / 1024


def test_the_read_cache_keeps_its_budget_in_bytes_of_memory(served: ServiceProcess) -> None:
    with grpc.insecure_channel(
        served.address, options=[("grpc.max_receive_message_length", -1)]
    ) as channel:
        api = pb_grpc.ConversationServiceStub(channel)

        def one(_: int) -> None:
            asked = pb.CreateConversationRequest(
                trkref="D10", first_name="A shopper", question=WIDEST, sku="EMOJI"
            )
            conversation = api.CreateConversation(asked, metadata=METADATA)
            for _ in range(2):
                answer = pb.NewAnswer(response=WIDEST, first_name="Ann")
                api.CreateAnswer(
                    pb.CreateAnswerRequest(
                        conversation_id=conversation.id, trkref="D10", answer=answer
                    ),
                    metadata=METADATA,
                )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(100)))

        def read(n: int) -> None:
            asked = pb.ListConversationsRequest(
                trkref="D10",
                sku="EMOJI",
                page_size=1 + n % 20,
                order_by=ORDERS[n // 20 % 3],
                answers_page_size=n // 60,
            )
            api.ListConversations(asked, metadata=METADATA)

        for n in range(3):  # a call's own objects, before the measure
            read(179 - n)
        before = rss_mib(served.process.pid)
        # 180 Lists, each another query: more pages than the budget holds.
        for n in range(180):
            read(n)
        grown = rss_mib(served.process.pid) - before
    assert grown <= BUDGET_MIB + MARGIN_MIB, f"grew {grown:.1f} MiB"
