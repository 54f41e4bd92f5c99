"""The bench rows of moderation (bench/moderation_data.py holds their data set):

- the moderation queue's first page, read with a moderator key on an organisation of
  QUEUE_CONVERSATIONS conversations of which QUEUE_PENDING are pending, beside
  Health/Check (target: at least QUEUE_SHARE of its throughput);
- the first List page of a product of which a third of CONVERSATIONS conversations are
  pending, beside the same call on a product of ten (target: within LIST_FACTOR);
- Create on an organisation blocking TERMS terms (texts that pass screening) beside Create
  on one blocking none, each on a fresh database (target: at least CREATE_SHARE).

Every read runs without the read cache, so that every page is read from the indexes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from bench import moderation_data as data
from bench import side_by_side
from bench.side_by_side import Creates, Measure, Measured, Serve
from conversations.v4 import conversation_service_pb2 as pb
from harness.support import (
    ORGANISATION,
    basic_authorization,
    create_key,
    opened_store,
    organisation_with_key,
    stored_count,
)

# How many conversations the moderated product holds; BENCH_MODERATION_CONVERSATIONS sets
# another size (a data set of each size is built once and kept).
CONVERSATIONS = int(os.environ.get("BENCH_MODERATION_CONVERSATIONS", "1000000"))
TERMS = 1_000
QUEUE_SHARE = 0.3
LIST_FACTOR = 2.0
CREATE_SHARE = 0.9
SERVICE = "/conversations.v4.ConversationService"
HEALTH = ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest())


def queue_call() -> tuple[str, Any]:
    request = pb.ListModerationQueueRequest(trkref=data.QUEUE_ORGANISATION, page_size=20)
    return (f"{SERVICE}/ListModerationQueue", request)


def list_call(sku: str) -> tuple[str, Any]:
    request = pb.ListConversationsRequest(trkref=ORGANISATION.trkref, sku=sku, page_size=20)
    return (f"{SERVICE}/ListConversations", request)


def run(workdir: Path, serve: Serve, measure: Measure, create: Any) -> list[Measured]:
    """Every row on both databases."""
    creates = Creates(f"Create, screening {TERMS:,} blocked terms", "Create, no blocked terms",
                      CREATE_SHARE, "moderation-creates", _prepared, _check_creates)  # fmt: skip
    return side_by_side.run(
        workdir, serve, measure, create, (data.DATA, CONVERSATIONS), _reads, creates
    )


def _reads(
    workdir: Path, serve: Serve, measure: Measure, database: str, url: str
) -> list[Measured]:
    moderator = basic_authorization(*create_key(url, data.QUEUE_ORGANISATION, role="moderator"))
    shopper = basic_authorization(*create_key(url, ORGANISATION.trkref))
    with serve(workdir, url, read_cache=False) as server:
        _check(server.address, moderator, shopper)
        reads = [("queue first page", queue_call()), ("Health/Check", HEALTH)]
        queue, health = measure(server, reads, moderator)
        lists = [("List, a third pending", list_call(data.LARGE_SKU)),
                 ("List, 10", list_call(data.SMALL_SKU))]  # fmt: skip
        large, small = measure(server, lists, shopper)
    pending = f"{data.QUEUE_PENDING:,} pending among {data.QUEUE_CONVERSATIONS:,}"
    return [
        Measured(database, f"moderation queue first page, moderator key ({pending})", queue,
                 "Health/Check", health, f">= {QUEUE_SHARE}x",
                 queue.per_second >= QUEUE_SHARE * health.per_second),
        Measured(database, f"List first page, product of {CONVERSATIONS:,}, a third pending",
                 large, "same, product of 10", small, f"<= {LIST_FACTOR}x",
                 0 < small.per_second <= LIST_FACTOR * large.per_second),
    ]  # fmt: skip


def _check(address: str, moderator: str, shopper: str) -> None:
    """The queue's first page is 20 pending conversations; the large product's first List
    page is 20 published ones under a summary counting its published conversations alone."""
    with grpc.insecure_channel(address) as channel:
        method, request = queue_call()
        queue = channel.unary_unary(
            method,
            request_serializer=pb.ListModerationQueueRequest.SerializeToString,
            response_deserializer=pb.ListModerationQueueResponse.FromString,
        )(request, metadata=(("authorization", moderator),), timeout=30)
        method, request = list_call(data.LARGE_SKU)
        page = channel.unary_unary(
            method,
            request_serializer=pb.ListConversationsRequest.SerializeToString,
            response_deserializer=pb.ListConversationsResponse.FromString,
        )(request, metadata=(("authorization", shopper),), timeout=30)
    assert len(queue.items) == 20 and queue.next_page_token, "the queue's first page is short"
    assert all(item.kind == "conversation" for item in queue.items), "the queue holds answers"
    published = pb.Status.Value("PUBLISHED")
    assert len(page.conversations) == 20, "the List page is short"
    assert all(c.status == published for c in page.conversations), "a shopper sees pending"
    expected = CONVERSATIONS - CONVERSATIONS // 3
    assert page.summary.question_count == expected, "the summary counts pending conversations"


def _check_creates(url: str) -> None:
    """Screening held none of the creates (their texts pass it), and they were stored."""
    assert _pending(url) == 0, "screening held a create"
    assert stored_count(url) > 0, "nothing was created"


def _pending(url: str) -> int:
    with opened_store(url) as store, store.reading():
        cursor = store.db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT COUNT(*) FROM conversation WHERE status <> 'published'"
        )
        return int(cursor.fetchone()[0])


def blocked_terms(count: int) -> list[str]:
    """`count` distinct terms, single words and pairs, none in the bench's texts."""
    words = ["scam", "knockoff", "counterfeit", "rubbish", "fraud", "garbage", "ripoff", "fake"]
    return [f"{words[n % len(words)]}{n}" if n % 3 else f"{words[n % len(words)]} deal{n}"
            for n in range(count)]  # fmt: skip


def _prepared(url: str, screened: bool) -> str:
    """A migrated database with ORGANISATION and a key (its authorization), blocking TERMS
    terms if `screened`."""
    key = basic_authorization(*organisation_with_key(url))
    if screened:
        with opened_store(url) as store:
            added = store.moderation.add_terms(ORGANISATION.trkref, blocked_terms(TERMS))
        assert added == TERMS, f"{added} terms added, not {TERMS}"
    return key
