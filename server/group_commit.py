"""Group commit: callers that arrive while a batch is being written share the next one.

A durable commit costs an fsync; concurrent callers share it by being written
together. There is no writer thread: the caller at the head of the queue, when
no batch is being written, writes everything queued (it leads), then wakes the
callers it wrote for and the next head. A lone caller writes at once, on its own
thread; a busy server writes larger batches. Handing every item to a thread of
its own cost more than the writing, in a process whose threads share the GIL.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# What `write` returns for each item: its outcome, or the exception its caller gets.
WriteBatch = Callable[[list[Item]], Sequence[Outcome | Exception]]


class Closed(RuntimeError):
    """The writer is closed and takes no more items."""


class _Entry(Generic[Item, Outcome]):
    """One caller's item, and its outcome once a leader has written it."""

    __slots__ = ("done", "item", "outcome", "taken", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        # Held until the caller is woken: its item is written, or it is to lead.
        self.wake = threading.Lock()
        self.wake.acquire()
        self.taken = False  # in a batch being written
        self.done = False
        self.outcome: Outcome | Exception | None = None


class GroupCommit(Generic[Item, Outcome]):
    """Hands queued items to `write` in batches of at most `max_batch`, one batch at a time."""

    def __init__(
        self,
        write: WriteBatch[Item, Outcome],
        *,
        max_batch: int,
        fail_queued_on: type[Exception] | None = None,
    ) -> None:
        """`fail_queued_on`: when every item of a batch fails with this error, the items
        queued while it was written fail with it at once rather than wait their turn
        for the same outcome (a database that is down or locked)."""
        self._write = write
        self._max_batch = max_batch
        self._fail_queued_on = fail_queued_on
        self._lock = threading.Lock()
        self._queue: collections.deque[_Entry[Item, Outcome]] = collections.deque()
        self._writing = False
        self._idle = threading.Condition(self._lock)
        self._closed = False

    def queued(self) -> int:
        """Items waiting for a batch, not counting one being written."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: Item, timeout: float) -> Outcome:
        """Queue `item` and wait until its batch is written; raises what `write` gave it.

        The calling thread may write the batch itself. On TimeoutError an item not
        yet taken into a batch is dropped; one already taken may still be written.
        """
        entry: _Entry[Item, Outcome] = _Entry(item)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise Closed("the writer is closed")
            self._queue.append(entry)
            batch = self._batch_to_lead(entry)
        while batch is None:
            woken = entry.wake.acquire(timeout=max(0.0, deadline - time.monotonic()))
            if entry.done:  # set before the wake-up: no need to take the lock
                break
            with self._lock:
                if entry.done:
                    break
                if not woken:
                    if not entry.taken:
                        self._give_up(entry)
                    raise TimeoutError("the write did not finish in time")
                batch = self._batch_to_lead(entry)
        if batch is not None:
            self._lead(batch)
        outcome = entry.outcome
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]  # done: set by `write`

    def close(self, timeout: float) -> None:
        """Refuse new items; wait up to `timeout` for those queued to be written."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            while self._writing or self._queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("closing with %d creates still queued", len(self._queue))
                    return
                self._idle.wait(remaining)

    def _batch_to_lead(self, entry: _Entry[Item, Outcome]) -> list[_Entry[Item, Outcome]] | None:
        """With the lock held: the batch `entry` writes, if it is its turn to lead."""
        if entry.done or self._writing or self._queue[0] is not entry:
            return None
        self._writing = True
        batch: list[_Entry[Item, Outcome]] = []
        while self._queue and len(batch) < self._max_batch:
            queued = self._queue.popleft()
            queued.taken = True
            batch.append(queued)
        return batch

    def _give_up(self, entry: _Entry[Item, Outcome]) -> None:
        """With the lock held: a caller timed out before its item was taken: it leaves the queue."""
        was_head = self._queue[0] is entry
        self._queue.remove(entry)
        if was_head:
            self._wake_head()

    def _lead(self, batch: list[_Entry[Item, Outcome]]) -> None:
        """Write a batch taken by this thread, then hand its outcomes back."""
        try:
            outcomes = self._write([entry.item for entry in batch])
        except Exception as error:  # a bug in `write`: fail its callers, keep the writer
            log.exception("group commit write failed")
            outcomes = [error] * len(batch)
        finished = list(zip(batch, outcomes, strict=True))
        with self._lock:
            self._writing = False
            failure = self._fail_queued_on
            if failure is not None and all(isinstance(o, failure) for o in outcomes):
                # The queued would wait their turn for the same error: give it now.
                finished += [(entry, outcomes[0]) for entry in self._queue]
                self._queue.clear()
            for entry, outcome in finished:
                entry.outcome, entry.done = outcome, True
            self._wake_head()
        # Outside the lock, which the woken need not take: each is woken once, here.
        for entry, _ in finished:
            entry.wake.release()

    def _wake_head(self) -> None:
        """With the lock held and no batch being written: the head of the queue leads next.

        While a batch is being written its leader wakes the head when it is done.
        """
        if self._writing:
            return
        if self._queue:
            head = self._queue[0]
            if head.wake.locked():
                head.wake.release()
        else:
            self._idle.notify_all()
