"""What a process has read lately (List pages, Detail's conversations, pages of answers),
served again while their product is unchanged.

Each value is kept with its product's stamp: the counts and revision of the product's
rows in conversation_count, as read just before the value. Every write that changes
what a List or a Detail of a product shows changes its stamp in the same transaction
(a create or a published answer its counts; every create, answer, vote and moderation
decision its revision, a held answer too: a moderator's reads show it), and a read
takes the stamp first, in the query it needs anyway (a List's summary, a Detail's
conversation). A value kept under the stamp just read is served without reading it
again. It cannot be older than what the caller would have read: it was read after its
stamp, and every replica writes the stamp with the rows, so whatever changed the value
since changed the stamp too.

One value per key (a List's query, a conversation's id, a page of answers' query, each
with the role whose view it is: a moderator's read is never served to a shopper) is kept,
within a budget of bytes of memory: every object a value holds is counted as Python sizes
it (a text of emoji takes four bytes a character, one of ASCII one), a text beyond ASCII
its UTF-8 form as well (a protobuf message of it leaves that inside the string), and each
entry a fixed part for its key and slot, with the texts of a key that holds long ones (a
List's search). The values read least lately go first. A lock guards
them: on PostgreSQL, reads run in the event loop's executor.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Hashable
from typing import TypeVar

from server.service.domain import AnswerPage, Conversation, ConversationPage

# What a product's rows in conversation_count held when a value was read:
# conversations, answers, revision.
Stamp = tuple[int, int, int]
Kept = TypeVar("Kept", Conversation, ConversationPage, AnswerPage)
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

    def put(self, key: Hashable, stamp: Stamp, value: Value) -> None:
        """Keep `value`, read for `key` under `stamp`, in place of any value kept for it;
        one larger than the budget is not kept."""
        if not self.budget:
            return
        size = weight(value) + key_weight(key)
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
