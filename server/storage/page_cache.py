"""The List pages a process has read lately, served again while their product is unchanged.

Each page is kept with its product's stamp: the counts and revision of its rows in
conversation_count, as read just before the page. Every write that changes what a
List of a product shows changes its stamp in the same transaction (a create or an
answer its counts, each of them and a vote its revision), and a List reads the stamp
first anyway, for its summary. A page kept under the stamp just read is served
without reading it again. It cannot be older than what the caller would have read:
it was read after its stamp, and every replica writes the stamp with the rows, so
whatever changed the page since changed the stamp too.

One page per query is kept, within a budget of bytes (roughly counted: a fixed part
per conversation and answer, and their long texts); the pages read least lately go
first. A lock guards them: on PostgreSQL, reads run in the event loop's executor.
"""

from __future__ import annotations

import collections
import threading

from server.service.domain import ConversationPage, PageQuery

# What a product's rows in conversation_count held when a page was read:
# conversations, answers, revision.
Stamp = tuple[int, int, int]

# The budget a process keeps pages in unless told otherwise.
DEFAULT_MIB = 32
# What a conversation or an answer takes besides its long texts (measured: a page of
# 20 conversations with two answers each, short texts, takes about 34 KiB).
ROW_BYTES = 512


def weight(page: ConversationPage) -> int:
    """Roughly the bytes a page takes: per row, ROW_BYTES and the texts that may be long."""
    total = 0
    for conversation in page.conversations:
        total += ROW_BYTES + len(conversation.question)
        for answer in conversation.answers:
            total += ROW_BYTES + len(answer.response) + len(answer.review_url)
            total += len(answer.reviewer_facebook_url or "") + len(answer.retailer_image_url or "")
    return total


class PageCache:
    """Pages by query, within `budget` bytes (none when 0)."""

    def __init__(self, budget: int = DEFAULT_MIB * 2**20) -> None:
        if budget < 0:
            raise ValueError("a page cache's budget is 0 bytes or more")
        self.budget = budget
        self.used = 0
        self._kept: collections.OrderedDict[PageQuery, tuple[Stamp, ConversationPage, int]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, query: PageQuery, stamp: Stamp) -> ConversationPage | None:
        """The page kept for `query`, if it was read under this stamp."""
        if not self.budget:
            return None
        with self._lock:
            kept = self._kept.get(query)
            if kept is None or kept[0] != stamp:
                return None
            self._kept.move_to_end(query)
            return kept[1]

    def put(self, query: PageQuery, stamp: Stamp, page: ConversationPage) -> None:
        """Keep `page`, read for `query` under `stamp`, in place of any page kept for it;
        a page larger than the budget is not kept."""
        if not self.budget:
            return
        size = weight(page)
        with self._lock:
            replaced = self._kept.pop(query, None)
            if replaced is not None:
                self.used -= replaced[2]
            if size > self.budget:
                return
            self._kept[query] = (stamp, page, size)
            self.used += size
            while self.used > self.budget:
                _, (_, _, evicted) = self._kept.popitem(last=False)
                self.used -= evicted

    def __len__(self) -> int:
        return len(self._kept)
