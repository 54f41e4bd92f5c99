"""The rows on the large data set: a product of a million conversations beside one of ten,
each call on the large product within LARGE_FACTOR of the same call on the small one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from bench import dataset
from bench.load import Result
from bench.measure import Load, get_call, list_call, measure_grpc, service
from conversations.v4 import conversation_service_pb2 as pb
from harness.service import ServiceProcess
from harness.support import basic_authorization, create_key, opened_store

# The rows on the large data set: shorter, six to a database.
LARGE_WARM_UP_SECONDS = 1
LARGE_MEASURE_SECONDS = 4
# How deep the deep List page is, in pages of 20.
DEEP_PAGES = 5000
# The large data set's target: each call on the large product within this factor of
# the same call on the small one.
LARGE_FACTOR = 2.0


@dataclass(frozen=True)
class Pair:
    """One call on the large product and the same call on the small one."""

    database: str
    call: str
    large: Result
    small: Result

    @property
    def ratio(self) -> float:
        """How many times the small product's throughput the large one's is below."""
        return self.small.per_second / self.large.per_second if self.large.per_second else 0.0

    @property
    def met(self) -> bool:
        return 0 < self.ratio <= LARGE_FACTOR


def run_large(workdir: Path) -> list[Pair]:
    """Detail, the first List page and a page DEEP_PAGES deep on the product of a million
    conversations, each beside the same call on the product of ten, on both databases;
    without the read cache, so that every page is read from the indexes."""
    pairs: list[Pair] = []
    for database, url in (("SQLite", dataset.sqlite_dataset()),
                          ("PostgreSQL", dataset.postgres_dataset())):  # fmt: skip
        key = basic_authorization(*create_key(url, "D10"))
        with opened_store(url) as store, store.reading():
            large = dataset.targets(dataset.LARGE_SKU, DEEP_PAGES)
            small = dataset.targets(dataset.SMALL_SKU, 0)
        calls = [
            ("Detail", get_call(large.conversation_id), get_call(small.conversation_id)),
            ("List first page", list_call(dataset.LARGE_SKU), list_call(dataset.SMALL_SKU)),
            (f"List page {DEEP_PAGES + 1:,}", list_call(dataset.LARGE_SKU, large.page_token),
             list_call(dataset.SMALL_SKU, small.page_token)),
        ]  # fmt: skip
        with service(workdir, url, read_cache=False) as server:
            check_deep_page(server, key, large)
            rows = [
                Load(f"{database} {name} {size}", call)
                for name, *both in calls
                for size, call in zip(("1M", "10"), both, strict=True)
            ]
            measured = measure_grpc(server, rows, key, LARGE_MEASURE_SECONDS, LARGE_WARM_UP_SECONDS)
        for (name, *_), big, little in zip(calls, measured[::2], measured[1::2], strict=True):
            assert big.result is not None and little.result is not None
            pairs.append(Pair(database, name, big.result, little.result))
    return pairs


def check_deep_page(server: ServiceProcess, authorization: str, large: dataset.Targets) -> None:
    """The deep page's token is taken, and its page starts where the data set says, under
    a summary of the whole product."""
    method, request = list_call(dataset.LARGE_SKU, large.page_token)
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary(
            method,
            request_serializer=pb.ListConversationsRequest.SerializeToString,
            response_deserializer=pb.ListConversationsResponse.FromString,
        )
        page = call(request, metadata=(("authorization", authorization),), timeout=30)
    assert page.conversations[0].id == large.page_first_id, "the deep page starts elsewhere"
    assert page.summary.question_count == dataset.LARGE_COUNT, "the summary is not the product's"


def large_table(pairs: list[Pair]) -> tuple[str, bool]:
    lines = [
        f"| database | call | 1M ok req/s | 10 ok req/s | 1M p50 / p99 ms | 10 p50 / p99 ms "
        f"| errors | 10 / 1M req/s | 1M / 10 p50 | met (<= {LARGE_FACTOR}) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in pairs:
        big, small = p.large, p.small
        lines.append(
            f"| {p.database} | {p.call} | {big.per_second:,.0f} | {small.per_second:,.0f} "
            f"| {big.p50_ms:.2f} / {big.p99_ms:.2f} | {small.p50_ms:.2f} / {small.p99_ms:.2f} "
            f"| {big.errors + small.errors} | {p.ratio:.2f} | {big.p50_ms / small.p50_ms:.2f} "
            f"| {p.met} |"
        )
    return "\n".join(lines), all(p.met for p in pairs)
