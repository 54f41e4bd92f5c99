"""Page tokens: signed positions, readable only with the key and the query that issued them."""

from __future__ import annotations

import pytest

from server.service import page_tokens
from server.service.domain import PageQuery

QUERY = PageQuery("D10", "AIPTPDV5700", None, "created_at desc", 20)


def test_a_token_reads_back_as_the_position_it_was_issued_for() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1_700_000_000, 42))
    assert page_tokens.read(b"k" * 32, QUERY, token, 2) == (1_700_000_000, 42)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1, 2))
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"j" * 32, QUERY, token, 2)


@pytest.mark.parametrize("token", ["", ".", "a.b.c", "!!!.???", "eyJ9.AAAA", "é" * 300])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, QUERY, token, 2)


def test_a_token_of_another_order_is_refused_even_with_a_key_of_the_same_length() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1, 2))
    other = PageQuery("D10", "AIPTPDV5700", None, "created_at asc", 20)
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, other, token, 2)
