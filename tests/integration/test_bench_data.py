"""The bench's data: generated products keep the counts List reads exact, and the page
tokens the bench signs are the ones the service issues for the same pages."""

from __future__ import annotations

import asyncio

import peewee

from bench import dataset
from harness.support import CALLER
from server.service import conversations
from server.service.conversations import ListRequest
from server.service.domain import Organisation
from server.storage.models import database
from server.storage.store import Store

BIG, SMALL = "BIG", "SMALL"


def listed(store: Store, sku: str, token: str = "") -> tuple[list[int], str, int, int]:
    """One page of 20: its ids, the next token, and the summary's two counts."""
    request = ListRequest(trkref="D10", sku=sku, page_size=20, page_token=token)
    page, next_token = asyncio.run(conversations.list_conversations(store, request, CALLER))
    ids = [c.id for c in page.conversations]
    return ids, next_token, page.question_count, page.answers_count


def every_id(store: Store, sku: str) -> list[int]:
    ids, token = [], ""
    for _ in range(100):
        found, token, _, _ = listed(store, sku, token)
        ids += found
        if not token:
            return ids
    raise AssertionError("more than 100 pages")


def counted_in_sql() -> dict[tuple[str, str], tuple[int, int]]:
    """(sku, locale) -> (conversations, answers), counted from the rows themselves."""
    return _counts(
        "SELECT c.sku, c.locale, COUNT(DISTINCT c.id), COUNT(a.id) FROM conversation c"
        " LEFT JOIN answer a ON a.conversation_id = c.id GROUP BY c.sku, c.locale"
    )


def counts_kept() -> dict[tuple[str, str], tuple[int, int]]:
    """(sku, locale) -> (conversations, answers), as conversation_count keeps them."""
    return _counts("SELECT sku, locale, question_count, answers_count FROM conversation_count")


def _counts(sql: str) -> dict[tuple[str, str], tuple[int, int]]:
    rows = database.execute_sql(sql).fetchall()
    return {(sku, locale): (int(n), int(a)) for sku, locale, n, a in rows}


def generate(store: Store, products: tuple[tuple[str, int], ...], chunk: int) -> None:
    """The bench's rows, in one transaction of the store's."""
    postgres = not isinstance(store.db, peewee.SqliteDatabase)
    with store.db.atomic():
        cursor = store.db.cursor()  # type: ignore[no-untyped-call]  # the transaction's
        dataset.generate(
            cursor, postgres=postgres, commit=lambda: None, products=products, chunk=chunk
        )


def test_generated_products_are_counted_exactly_and_paged_by_the_service(
    store: Store, organisation: Organisation
) -> None:
    generate(store, ((BIG, 95), (SMALL, 10)), chunk=40)
    with store.reading():
        assert counts_kept() == counted_in_sql()
        assert {key for key in counts_kept()} == {
            (sku, locale) for sku in (BIG, SMALL) for locale in ("en-GB", "fr-FR")
        }
    big = every_id(store, BIG)
    assert len(big) == len(set(big)) == 95
    assert listed(store, BIG)[2:] == (95, 0)


def test_the_tokens_the_bench_signs_open_the_pages_the_service_would(
    store: Store, organisation: Organisation
) -> None:
    generate(store, ((BIG, 95),), chunk=dataset.CHUNK)
    big = every_id(store, BIG)
    with store.reading():
        deep = dataset.targets(BIG, depth=2)
        shallow = dataset.targets(BIG, depth=0)
    assert deep.page_first_id == big[40]
    assert listed(store, BIG, deep.page_token)[0] == big[40:60]
    assert listed(store, BIG, shallow.page_token)[0] == big[1:21]
    assert deep.conversation_id == big[47]


def test_seeded_answers_are_counted_as_the_service_counts_them(
    store: Store, organisation: Organisation
) -> None:
    ids = dataset.seed_answered(store, "ANSWERED", conversations=3, answers_each=2)
    detail = asyncio.run(conversations.get_conversation(store, "D10", ids[0], CALLER))
    assert len(detail.answers) == detail.answers_count == 2
    page_ids, token, question_count, answers_count = listed(store, "ANSWERED")
    assert (page_ids, token, question_count, answers_count) == (ids[::-1], "", 3, 6)
    with store.reading():
        assert counts_kept() == counted_in_sql() == {("ANSWERED", "en-GB"): (3, 6)}
