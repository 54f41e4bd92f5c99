"""What a process has read lately (List pages, Detail's conversations, pages of answers),
served again while their product is unchanged.

Each value is kept with its product's stamp: the counts and revision of the product's
rows in conversation_count, as read just before the value. The database changes the
stamp in the same transaction as any row such a read shows, however the row is written
(the triggers of migration 0015: by the service, a migration or an operator's SQL), and
a read takes the stamp first, in the query it needs anyway (a List's summary, a Detail's
conversation). A value kept under the stamp just read is served without reading it
again. It cannot be older than what the caller would have read: it was read after its
stamp, and whatever changed the value since changed the stamp too.

Each kind has its own values by its own key (a conversation's id, a List's query, a page
of answers' query, each with the role whose view it is: a moderator's read is never served
to a shopper); one value per key is kept, within one budget of bytes of memory for every
kind: every object a value holds is counted as Python sizes it (a text of emoji takes four
bytes a character, one of ASCII one), a text beyond ASCII its UTF-8 form as well (a
protobuf message of it leaves that inside the string), and each entry a fixed part for its
key and slot, with the texts of a key that holds long ones (a List's search). The values
read least lately, of any kind, go first. A lock guards them: on PostgreSQL, reads run in
the event loop's executor.
"""

from __future__ import annotations

import collections
import itertools
import sys
import threading
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from server.service.domain import AnswerPage, AnswerQuery, Conversation, ConversationPage, PageQuery

# What a product's rows in conversation_count held when a value was read:
# conversations, answers, revision.
Stamp = tuple[int, int, int]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V", Conversation, ConversationPage, AnswerPage)
Value = Conversation | ConversationPage | AnswerPage

# The budget a process keeps values in unless told otherwise.
DEFAULT_MIB = 32
# What an entry takes besides its value, at most: its key (a query of a few short texts)
# and its slot in the ordered dict.
ENTRY_BYTES = 1024
# The part of ENTRY_BYTES a key's texts may take; what a key's texts take beyond it (a
# search of hundreds of characters) counts as well.
KEY_TEXT_BYTES = 512


def weight(value: Value) -> int:
    """The bytes of memory a value holds, with its entry: each object it refers to, once."""
    total = ENTRY_BYTES
    seen: set[int] = set()
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, str):
            total += text_bytes(item)
            continue
        total += sys.getsizeof(item)
        if isinstance(item, tuple):  # conversations, answers, pages of them
            pending.extend(item)
        elif hasattr(item, "__dict__"):  # the pages' dataclasses
            attributes = vars(item)
            total += sys.getsizeof(attributes)
            pending.extend(attributes.values())
    return total


def key_weight(key: Hashable) -> int:
    """What the texts of a key (a tuple, or a query's fields) take beyond KEY_TEXT_BYTES."""
    if hasattr(key, "__dict__"):
        fields = tuple(vars(key).values())
    else:
        fields = key if isinstance(key, tuple) else (key,)
    texts = sum(text_bytes(field) for field in fields if isinstance(field, str))
    return max(0, texts - KEY_TEXT_BYTES)


def text_bytes(text: str) -> int:
    """The bytes of memory a text holds: as Python sizes it, and beyond ASCII its UTF-8
    form too (CPython keeps it inside the string once made, and making a protobuf message
    of the text, or binding it to a statement, makes it)."""
    if text.isascii():
        return sys.getsizeof(text)
    return sys.getsizeof(text) + len(text.encode(errors="surrogatepass")) + 1


class _Entry(Generic[V]):
    """A value, the stamp it was read under, its bytes, and when it was last read."""

    __slots__ = ("size", "stamp", "tick", "value")

    def __init__(self, stamp: Stamp, value: V, size: int, tick: int) -> None:
        self.stamp: Stamp = stamp
        self.value: V = value
        self.size = size
        self.tick = tick


class Kept(Generic[K, V]):
    """The values of one kind by key, least lately read first; their bytes count against
    their ReadCache's budget."""

    def __init__(self, cache: ReadCache) -> None:
        self._cache = cache
        self._entries: collections.OrderedDict[K, _Entry[V]] = collections.OrderedDict()

    def get(self, key: K, stamp: Stamp) -> V | None:
        """The value kept for `key`, if it was read under this stamp."""
        cache = self._cache
        if not cache.budget:
            return None
        with cache.lock:
            entry = self._entries.get(key)
            if entry is None or entry.stamp != stamp:
                return None
            entry.tick = next(cache.ticks)
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: K, stamp: Stamp, value: V) -> None:
        """Keep `value`, read for `key` under `stamp`, in place of any value kept for it;
        one larger than the budget is not kept."""
        cache = self._cache
        if not cache.budget:
            return
        size = weight(value) + key_weight(key)
        with cache.lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                cache.used -= replaced.size
            if size > cache.budget:
                return
            self._entries[key] = _Entry(stamp, value, size, next(cache.ticks))
            cache.used += size
            cache.make_room()

    def oldest(self) -> int | None:
        """When the value read least lately was read; None when none is kept."""
        for entry in self._entries.values():
            return entry.tick
        return None

    def evict_oldest(self) -> int:
        """Forget the value read least lately; its bytes."""
        _, entry = self._entries.popitem(last=False)
        return entry.size

    def __len__(self) -> int:
        return len(self._entries)


class ReadCache:
    """Detail's conversations, List pages and pages of answers, each kind by its own key,
    within `budget` bytes for all of them (none when 0)."""

    def __init__(self, budget: int = DEFAULT_MIB * 2**20) -> None:
        if budget < 0:
            raise ValueError("a read cache's budget is 0 bytes or more")
        self.budget = budget
        self.used = 0
        self.lock = threading.Lock()
        self.ticks = itertools.count()
        # A conversation by (id, how many answers it embeds).
        self.conversations: Kept[tuple[int, int, str], Conversation] = Kept(self)
        self.list_pages: Kept[PageQuery, ConversationPage] = Kept(self)
        self.answer_pages: Kept[AnswerQuery, AnswerPage] = Kept(self)
        self._kinds: tuple[Kept[Any, Any], ...] = (
            self.conversations,
            self.list_pages,
            self.answer_pages,
        )

    def make_room(self) -> None:
        """Forget the values read least lately, of any kind, until the budget holds the rest
        (under `lock`)."""
        while self.used > self.budget:
            kinds = [(tick, kind) for kind in self._kinds if (tick := kind.oldest()) is not None]
            self.used -= min(kinds, key=lambda pair: pair[0])[1].evict_oldest()

    def __len__(self) -> int:
        return sum(len(kind) for kind in self._kinds)
