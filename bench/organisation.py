"""The bench rows of search, filters and the organisation-wide List (bench/organisation_data.py
holds their data set):

- a retailer's answering queue (`answered = false`, oldest first) across the organisation,
  its first page and a page QUEUE_DEEP_PAGES deep, each beside the same call on an
  organisation of ten (target: within QUEUE_FACTOR);
- a search within a product of 10,000 conversations, first page, beside Health/Check
  (target: at least SEARCH_SHARE of its throughput);
- a search across the organisation for a word in one conversation in a hundred, beside a
  plain organisation-wide List (printed, no target);
- Create with the search index, the kept counts and the new indexes beside Create without
  them (migration 0010's triggers and indexes dropped), each on a fresh database (target:
  at least CREATE_SHARE).

Every read runs without the read cache, so that every page is read from the indexes.
"""

from __future__ import annotations

import calendar
import os
from pathlib import Path
from typing import Any

import peewee
from grpc_health.v1 import health_pb2

from bench import organisation_data as data
from bench import side_by_side
from bench.side_by_side import Creates, Measure, Measured, Serve
from conversations.v4 import conversation_service_pb2 as pb
from harness.support import basic_authorization, create_key, opened_store, organisation_with_key
from server.service import page_tokens
from server.service.domain import PageQuery
from server.service.filters import parse_filter
from server.storage.models import ServiceSecretRow
from server.storage.prepared import stored_time

# How many conversations the data set holds; BENCH_ORGANISATION_CONVERSATIONS sets another
# size (a data set of each size is built once and kept).
CONVERSATIONS = int(os.environ.get("BENCH_ORGANISATION_CONVERSATIONS", "1000000"))
QUEUE_DEEP_PAGES = 1000
QUEUE_FACTOR = 2.0
SEARCH_SHARE = 0.2
CREATE_SHARE = 0.85
QUEUE_FILTER = "answered = false"
QUEUE_ORDER = "created_at asc"
LIST = "/conversations.v4.ConversationService/ListConversations"
HEALTH = ("/grpc.health.v1.Health/Check", None)


def list_call(trkref: str, page_token: str = "", **asked: Any) -> tuple[str, Any]:
    request = pb.ListConversationsRequest(
        trkref=trkref, page_size=20, page_token=page_token, **asked
    )
    return (LIST, request)


def queue_call(trkref: str, page_token: str = "") -> tuple[str, Any]:
    return list_call(trkref, page_token, filter=QUEUE_FILTER, order_by=QUEUE_ORDER)


def queue_token(database_url: str, trkref: str, depth: int) -> str:
    """The token of the queue's page after `depth` pages of 20 (depth 0: after its first
    conversation), as the service would issue it."""
    query = PageQuery(trkref, None, None, QUEUE_ORDER, 20, filter=parse_filter(QUEUE_FILTER))
    with opened_store(database_url) as store, store.reading():
        p = store.db.param
        cursor = store.db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT c.created_at, c.id FROM conversation c JOIN organisation o"
            f" ON o.id = c.organisation_id WHERE o.trkref = {p} AND c.answers_count = 0"
            f" ORDER BY c.created_at, c.id LIMIT 1 OFFSET {p}",
            (trkref, max(0, depth * 20 - 1)),
        )
        created_at, conversation_id = cursor.fetchone()
        secret = bytes.fromhex(ServiceSecretRow.get_by_id("page_token").value)
    moment = calendar.timegm(stored_time(created_at).utctimetuple())
    return page_tokens.issue(secret, query, (moment, conversation_id))


def run(workdir: Path, serve: Serve, measure: Measure, create: Any) -> list[Measured]:
    """Every row on both databases."""
    creates = Creates("Create with the search index and new indexes", "Create without them",
                      CREATE_SHARE, "creates", _migrated)  # fmt: skip
    return side_by_side.run(
        workdir, serve, measure, create, (data.DATA, CONVERSATIONS), _reads, creates
    )


def _reads(
    workdir: Path, serve: Serve, measure: Measure, database: str, url: str
) -> list[Measured]:
    key = basic_authorization(*create_key(url, "D10", data.SMALL))
    large, small = "D10", data.SMALL
    deep = f"queue page {QUEUE_DEEP_PAGES + 1:,}"
    calls = [
        ("queue first page", queue_call(large)),
        ("queue first page, 10", queue_call(small)),
        (deep, queue_call(large, queue_token(url, large, QUEUE_DEEP_PAGES))),
        (deep + ", 10", queue_call(small, queue_token(url, small, 0))),
        ("search in a product of 10,000", list_call(large, sku=data.SEARCH_SKU,
                                                    search=data.SEARCH_COMMON)),
        ("Health/Check", (HEALTH[0], health_pb2.HealthCheckRequest())),
        ("search across the organisation (1 %)", list_call(large, search=data.SEARCH_RARE)),
        ("organisation-wide List first page", list_call(large)),
    ]  # fmt: skip
    with serve(workdir, url, read_cache=False) as server:
        results = measure(server, calls, key)
    # The search again as the service serves it: the product's page kept while unchanged.
    kept = [
        ("search in a product of 10,000, kept", calls[4][1]),
        ("Health/Check beside it", calls[5][1]),
    ]
    with serve(workdir, url) as server:
        results += measure(server, kept, key)
    names = [name for name, _ in calls] + [name for name, _ in kept]
    by_name = dict(zip(names, results, strict=True))
    size = f"{CONVERSATIONS:,}"

    def queue(name: str) -> Measured:
        big, little = by_name[name], by_name[name + ", 10"]
        met = 0 < little.per_second <= QUEUE_FACTOR * big.per_second
        return Measured(database, f"{name}, {size}", big, "same, organisation of 10", little,
                        f"<= {QUEUE_FACTOR}x", met)  # fmt: skip

    search = by_name["search in a product of 10,000, kept"]
    health = by_name["Health/Check beside it"]
    across = by_name["search across the organisation (1 %)"]
    return [
        queue("queue first page"),
        queue(deep),
        Measured(database, "search in a product of 10,000, kept", search, "Health/Check",
                 health, f">= {SEARCH_SHARE}x",
                 search.per_second >= SEARCH_SHARE * health.per_second),
        Measured(database, "search in a product of 10,000, no read cache",
                 by_name["search in a product of 10,000"], "Health/Check",
                 by_name["Health/Check"], "printed", None),
        Measured(database, f"search across the organisation (1 %), {size}", across,
                 "organisation-wide List first page", by_name["organisation-wide List first page"],
                 "printed", None),
    ]  # fmt: skip


# What migration 0010 adds to a create's work: its triggers and its indexes.
_TRIGGERS = {
    "conversation": ("conversation_search", "conversation_counted", "conversation_recounted"),
    "answer": ("answer_search",),
}
_SQLITE_TRIGGERS = (
    "conversation_search_insert", "conversation_search_update", "conversation_search_delete",
    "answer_search_insert", "answer_search_update", "answer_search_delete",
    "conversation_counted", "conversation_recounted",
)  # fmt: skip
_INDEXES = (
    "conversation_organisation_created", "conversation_organisation_helpful",
    "conversation_organisation_answers", "conversation_product_answers",
)  # fmt: skip


def _migrated(url: str, indexed: bool) -> str:
    """A migrated database with D10 and a key (its authorization); without what migration
    0010 adds to a create's work (its triggers and indexes) unless `indexed`."""
    key = basic_authorization(*organisation_with_key(url))
    if not indexed:
        with opened_store(url) as store, store.reading():
            db: Any = store.db
            if isinstance(db, peewee.PostgresqlDatabase):
                drops = [f"TRIGGER {t} ON {table}" for table, ts in _TRIGGERS.items() for t in ts]
            else:
                drops = [f"TRIGGER {trigger}" for trigger in _SQLITE_TRIGGERS]
            for dropped in [*drops, *(f"INDEX {index}" for index in _INDEXES)]:
                db.execute_sql(f"DROP {dropped}")
    return key
