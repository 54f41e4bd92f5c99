"""What a process has read lately (List pages, Detail's conversations), served again while
their product is unchanged.

Each value is kept with its product's stamp: the counts and revision of the product's
rows in conversation_count, as read just before the value. Every write that changes
what a List or a Detail of a product shows changes its stamp in the same transaction
(a create or an answer its counts, each of them and a vote its revision), and a read
takes the stamp first, in the query it needs anyway (a List's summary, a Detail's
conversation). A value kept under the stamp just read is served without reading it
again. It cannot be older than what the caller would have read: it was read after its
stamp, and every replica writes the stamp with the rows, so whatever changed the value
since changed the stamp too.

One value per key (a List's query, a conversation's id) is kept, within a budget of
bytes (roughly counted: a fixed part per conversation and answer, and their long
texts); the values read least lately go first. A lock guards them: on PostgreSQL,
reads run in the event loop's executor.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Hashable
from typing import TypeVar

from server.service.domain import Conversation, ConversationPage

# What a product's rows in conversation_count held when a value was read:
# conversations, answers, revision.
Stamp = tuple[int, int, int]
Kept = TypeVar("Kept", Conversation, ConversationPage)

# The budget a process keeps values in unless told otherwise.
DEFAULT_MIB = 32
# What a conversation or an answer takes besides its long texts (measured: a page of
# 20 conversations with two answers each, short texts, takes about 34 KiB).
ROW_BYTES = 512


def weight(value: Conversation | ConversationPage) -> int:
    """Roughly the bytes a value takes: per row, ROW_BYTES and the texts that may be long."""
    conversations = value.conversations if isinstance(value, ConversationPage) else (value,)
    total = 0
    for conversation in conversations:
        total += ROW_BYTES + len(conversation.question)
        for answer in conversation.answers:
            total += ROW_BYTES + len(answer.response) + len(answer.review_url)
            total += len(answer.reviewer_facebook_url or "") + len(answer.retailer_image_url or "")
    return total


class ReadCache:
    """Values by key, within `budget` bytes (none when 0)."""

    def __init__(self, budget: int = DEFAULT_MIB * 2**20) -> None:
        if budget < 0:
            raise ValueError("a read cache's budget is 0 bytes or more")
        self.budget = budget
        self.used = 0
        self._kept: collections.OrderedDict[Hashable, tuple[Stamp, object, int]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: Stamp, kind: type[Kept]) -> Kept | None:
        """The value of `kind` kept for `key`, if it was read under this stamp."""
        if not self.budget:
            return None
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or kept[0] != stamp or type(kept[1]) is not kind:
                return None
            self._kept.move_to_end(key)
            return kept[1]

    def put(self, key: Hashable, stamp: Stamp, value: Conversation | ConversationPage) -> None:
        """Keep `value`, read for `key` under `stamp`, in place of any value kept for it;
        one larger than the budget is not kept."""
        if not self.budget:
            return
        size = weight(value)
        with self._lock:
            replaced = self._kept.pop(key, None)
            if replaced is not None:
                self.used -= replaced[2]
            if size > self.budget:
                return
            self._kept[key] = (stamp, value, size)
            self.used += size
            while self.used > self.budget:
                _, (_, _, evicted) = self._kept.popitem(last=False)
                self.used -= evicted

    def __len__(self) -> int:
        return len(self._kept)
