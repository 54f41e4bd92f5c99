"""The read cache: a value per key, served under its stamp only, within its budget."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from server.service.domain import Answer, Conversation, ConversationPage, PageQuery
from server.storage.read_cache import KEY_TEXT_BYTES, ReadCache, weight

MOMENT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def query(sku: str = "S") -> PageQuery:
    return PageQuery("D10", sku, None, "created_at desc", 20)


def a_conversation(answers: int = 0, text: str = "?") -> Conversation:
    answer = Answer(7, text, MOMENT, "An owner", "", None, "", 0, 0, "", "", None, "", None, None)
    return Conversation(
        1, "D10", "S", "A shopper", text, "en-GB", MOMENT, 0, 0, False, "en-GB",
        (answer,) * answers, answers,
    )  # fmt: skip


def a_page(conversations: int = 1, answers: int = 0, text: str = "?") -> ConversationPage:
    conversation = a_conversation(answers, text)
    return ConversationPage((conversation,) * conversations, conversations, answers, None)


def test_a_value_is_served_under_its_stamp_only() -> None:
    cache, page = ReadCache(), a_page()
    cache.list_pages.put(query(), (1, 0, 1), page)
    assert cache.list_pages.get(query(), (1, 0, 1)) is page
    assert cache.list_pages.get(query(), (1, 0, 2)) is None  # a write since
    assert cache.list_pages.get(query("T"), (1, 0, 1)) is None  # another query


def test_pages_and_conversations_are_kept_side_by_side() -> None:
    cache, page, conversation = ReadCache(), a_page(), a_conversation()
    cache.list_pages.put(query(), (1, 0, 1), page)
    cache.conversations.put((1, 20, "shopper"), (1, 0, 1), conversation)
    assert cache.conversations.get((1, 20, "shopper"), (1, 0, 1)) is conversation
    assert cache.list_pages.get(query(), (1, 0, 1)) is page
    assert (len(cache), cache.used) == (2, weight(page) + weight(conversation))


def test_the_value_read_least_lately_goes_first_whatever_its_kind() -> None:
    page, conversation = a_page(), a_conversation()
    cache = ReadCache(weight(page) + weight(conversation))
    cache.conversations.put((1, 20, "shopper"), (1, 0, 1), conversation)
    cache.list_pages.put(query(), (1, 0, 1), page)
    # The page is older now.
    assert cache.conversations.get((1, 20, "shopper"), (1, 0, 1)) is conversation
    cache.conversations.put((2, 20, "shopper"), (1, 0, 1), conversation)
    assert cache.list_pages.get(query(), (1, 0, 1)) is None
    assert cache.conversations.get((1, 20, "shopper"), (1, 0, 1)) is conversation


def test_a_key_keeps_one_value_the_last_read() -> None:
    cache, newer = ReadCache(), a_page(2)
    cache.list_pages.put(query(), (1, 0, 1), a_page())
    cache.list_pages.put(query(), (2, 0, 2), newer)
    assert (len(cache), cache.used) == (1, weight(newer))
    assert cache.list_pages.get(query(), (1, 0, 1)) is None
    assert cache.list_pages.get(query(), (2, 0, 2)) is newer


def test_the_values_read_least_lately_go_first_when_the_budget_is_spent() -> None:
    page = a_page()
    cache = ReadCache(3 * weight(page))
    for sku in "ABC":
        cache.list_pages.put(query(sku), (1, 0, 1), page)
    assert cache.list_pages.get(query("A"), (1, 0, 1)) is page  # B is now the oldest
    cache.list_pages.put(query("D"), (1, 0, 1), page)
    kept = [sku for sku in "ABCD" if cache.list_pages.get(query(sku), (1, 0, 1))]
    assert kept == ["A", "C", "D"]
    assert cache.used == 3 * weight(page) <= cache.budget


def test_a_value_is_weighed_in_bytes_of_memory_not_characters() -> None:
    ascii_text, emoji = (
        weight(a_conversation(1, "x" * 5000)),
        weight(a_conversation(1, "😀" * 5000)),
    )
    # One text of 5,000 characters (the question and the answer's response share it).
    assert 5000 < ascii_text < 5000 + 4096
    # Four bytes a character, and its UTF-8 form (four bytes a character) beside it.
    assert 8 * 5000 < emoji < 8 * 5000 + 4096


def test_each_distinct_row_of_a_value_counts() -> None:
    one = a_conversation(2, "x" * 1000)
    three = ConversationPage(
        tuple(one._replace(id=n, question=str(n) * 1000) for n in range(3)), 3, 6, None
    )
    assert weight(three) > 3 * 1000 + weight(one)


def test_the_long_texts_of_a_key_count_too() -> None:
    page = a_page()
    # A search of 500 characters of four bytes each, beside its UTF-8 form.
    searched = dataclasses.replace(query(), search=" ".join(["\U0001d400" * 9] * 50))
    cache = ReadCache()
    cache.list_pages.put(searched, (1, 0, 1), page)
    assert cache.used > weight(page) + 8 * 450 - KEY_TEXT_BYTES


def test_a_value_larger_than_the_budget_is_not_kept() -> None:
    small, large = a_page(), a_page(10, 10, text="x" * 5000)
    cache = ReadCache(weight(large) - 1)
    cache.list_pages.put(query(), (1, 0, 1), small)
    cache.list_pages.put(query(), (2, 0, 2), large)
    assert (len(cache), cache.used) == (0, 0)
    assert cache.list_pages.get(query(), (2, 0, 2)) is None


def test_a_cache_of_no_bytes_keeps_nothing() -> None:
    cache = ReadCache(0)
    cache.list_pages.put(query(), (1, 0, 1), a_page())
    assert cache.list_pages.get(query(), (1, 0, 1)) is None
    assert len(cache) == 0


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="0 bytes or more"):
        ReadCache(-1)
