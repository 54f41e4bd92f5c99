"""The largest responses: a List's token in them is as long as any a List page can carry."""

from __future__ import annotations

import sys

from server.api.largest import largest_responses
from server.service import page_tokens
from server.service.domain import ORDERS, PageQuery

SECRET = b"\0" * 32
WHOLE_MAX = 2**63 - 1


def test_no_list_token_is_longer_than_the_largest_lists() -> None:
    page = largest_responses("x")["ListConversations"][0]
    bound = len(page.next_page_token)  # type: ignore[attr-defined]
    searched = PageQuery("D" * 32, "S", None, "relevance", 20, search="battery")
    # A relevance is a double: its longest JSON forms are longer than any whole number's.
    for relevance in (-sys.float_info.max, -2.2250738585072014e-308, 0.30000000000000004):
        token = page_tokens.issue(SECRET, searched, (relevance, WHOLE_MAX, WHOLE_MAX))
        assert len(token) <= bound
    for order, columns in ORDERS.items():
        query = PageQuery("D" * 32, "S", None, order, 20, search="battery")
        assert len(page_tokens.issue(SECRET, query, (WHOLE_MAX,) * len(columns))) <= bound
