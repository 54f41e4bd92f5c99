"""The page cache: a page per query, served under its stamp only, within its budget."""

from __future__ import annotations

import datetime

import pytest

from server.service.domain import Answer, Conversation, ConversationPage, PageQuery
from server.storage.page_cache import ROW_BYTES, PageCache, weight

MOMENT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def query(sku: str = "S") -> PageQuery:
    return PageQuery("D10", sku, None, "created_at desc", 20)


def a_page(conversations: int = 1, answers: int = 0, text: str = "?") -> ConversationPage:
    answer = Answer(7, text, MOMENT, "An owner", "", None, "", 0, 0, "", "", None, "", None, None)
    conversation = Conversation(
        1, "D10", "S", "A shopper", text, "en-GB", MOMENT, 0, 0, False, "en-GB",
        (answer,) * answers, answers,
    )  # fmt: skip
    return ConversationPage((conversation,) * conversations, conversations, answers, None)


def test_a_page_is_served_under_its_stamp_only() -> None:
    cache, page = PageCache(), a_page()
    cache.put(query(), (1, 0, 1), page)
    assert cache.get(query(), (1, 0, 1)) is page
    assert cache.get(query(), (1, 0, 2)) is None  # a write since
    assert cache.get(query("T"), (1, 0, 1)) is None  # another query


def test_a_query_keeps_one_page_the_last_read() -> None:
    cache, newer = PageCache(), a_page(2)
    cache.put(query(), (1, 0, 1), a_page())
    cache.put(query(), (2, 0, 2), newer)
    assert (len(cache), cache.used) == (1, weight(newer))
    assert cache.get(query(), (1, 0, 1)) is None
    assert cache.get(query(), (2, 0, 2)) is newer


def test_the_pages_read_least_lately_go_first_when_the_budget_is_spent() -> None:
    page = a_page()
    cache = PageCache(3 * weight(page))
    for sku in "ABC":
        cache.put(query(sku), (1, 0, 1), page)
    assert cache.get(query("A"), (1, 0, 1)) is page  # read lately: B is now the oldest
    cache.put(query("D"), (1, 0, 1), page)
    kept = [sku for sku in "ABCD" if cache.get(query(sku), (1, 0, 1)) is not None]
    assert kept == ["A", "C", "D"]
    assert cache.used == 3 * weight(page) <= cache.budget


def test_a_page_is_weighed_by_its_rows_and_long_texts() -> None:
    assert weight(a_page(2, 3, text="x" * 1000)) == 2 * (ROW_BYTES + 1000) * 4


def test_a_page_larger_than_the_budget_is_not_kept() -> None:
    small, large = a_page(), a_page(10, 10, text="x" * 5000)
    cache = PageCache(weight(large) - 1)
    cache.put(query(), (1, 0, 1), small)
    cache.put(query(), (2, 0, 2), large)
    assert (len(cache), cache.used) == (0, 0)
    assert cache.get(query(), (2, 0, 2)) is None


def test_a_cache_of_no_bytes_keeps_nothing() -> None:
    cache = PageCache(0)
    cache.put(query(), (1, 0, 1), a_page())
    assert cache.get(query(), (1, 0, 1)) is None
    assert len(cache) == 0


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="0 bytes or more"):
        PageCache(-1)
