"""Group commit: creates that arrive while a batch is being written share the next one.

A durable commit costs an fsync; concurrent callers share it by being written
together. One writer thread takes everything queued (up to `max_batch`), writes
it, hands each caller its outcome on the caller's event loop, and takes the
next batch: while one batch is written, the next one gathers. A lone caller is
written at once; a busy server writes larger batches. Callers await their
outcome, so an event loop never waits on the database, and a batch costs one
hand-over between threads however many callers it holds. One timer per event
loop bounds how long its callers wait, rather than one timer per caller.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# What `write` returns for each item: its outcome, or the exception its caller gets.
WriteBatch = Callable[[list[Item]], Sequence[Outcome | Exception]]


class Closed(RuntimeError):
    """The writer is closed and takes no more items."""


class _Entry(Generic[Item, Outcome]):
    """One caller's item, and where its outcome goes."""

    __slots__ = ("future", "item", "loop", "taken")

    def __init__(self, item: Item, loop: asyncio.AbstractEventLoop) -> None:
        self.item = item
        self.loop = loop
        self.future: asyncio.Future[Outcome] = loop.create_future()
        self.taken = False  # in a batch being written


class _Deadlines:
    """The callers on one event loop that still wait, by deadline; one timer fails those past it.

    asyncio.timeout would cost each caller a Timeout and a timer, pushed on and
    cancelled from the loop's heap of timers, whose handles compare in Python (its cost is
    in docs/architecture.md). Holds nothing
    of its loop while no caller waits, so a loop that is gone is forgotten.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, _Entry[Any, Any]]] = []  # a heap
        self._order = itertools.count()  # equal deadlines: first come, first out
        self._timer: asyncio.TimerHandle | None = None

    def add(self, entry: _Entry[Any, Any], timeout: float) -> None:
        deadline = entry.loop.time() + timeout
        heapq.heappush(self._waiting, (deadline, next(self._order), entry))
        if self._timer is None or deadline < self._timer.when():
            self._arm(entry.loop)

    def forget_answered(self) -> None:
        """Drop the callers answered (in deadline order, as they mostly are)."""
        waiting = self._waiting
        while waiting and waiting[0][2].future.done():
            heapq.heappop(waiting)
        if not waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self._waiting[0][0], self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        waiting, now = self._waiting, loop.time()
        while waiting and waiting[0][0] <= now:
            future = heapq.heappop(waiting)[2].future
            if not future.done():
                future.set_exception(TimeoutError("the write did not finish in time"))
        self.forget_answered()
        if waiting:
            self._arm(loop)


Finished = list[tuple[_Entry[Item, Outcome], Outcome | Exception]]


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
        self._ready = threading.Condition(self._lock)  # items queued, or closed
        self._idle = threading.Condition(self._lock)  # nothing queued or being written
        self._writing = False
        self._waiting = False  # the writer waits for items
        self._closed = False
        self._thread: threading.Thread | None = None
        self._deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
            weakref.WeakKeyDictionary()
        )

    def queued(self) -> int:
        """Items waiting for a batch, not counting one being written."""
        with self._lock:
            return len(self._queue)

    async def submit(self, item: Item, timeout: float) -> Outcome:
        """Queue `item` and wait until its batch is written; raises what `write` gave it.

        On TimeoutError or cancellation an item not yet taken into a batch is
        dropped; one already taken may still be written.
        """
        loop = asyncio.get_running_loop()
        entry: _Entry[Item, Outcome] = _Entry(item, loop)
        with self._lock:
            if self._closed:
                raise Closed("the writer is closed")
            self._queue.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            if self._waiting:  # else the writer is busy, and takes the queue when done
                self._ready.notify()
            deadlines = self._deadlines.get(loop)
            if deadlines is None:
                deadlines = self._deadlines[loop] = _Deadlines()
        deadlines.add(entry, timeout)
        try:
            return await entry.future
        except BaseException:
            with self._lock:
                if not entry.taken:
                    self._queue.remove(entry)
            raise
        finally:
            deadlines.forget_answered()

    def close(self, timeout: float) -> None:
        """Refuse new items; wait up to `timeout` for those queued to be written."""
        with self._lock:
            self._closed = True
            self._ready.notify()
            if not self._idle.wait_for(lambda: not (self._writing or self._queue), timeout):
                log.warning("closing with %d creates still queued", len(self._queue))

    def _run(self) -> None:
        """The writer thread: write batches while items are queued; end once closed and idle."""
        while True:
            with self._lock:
                self._writing = False
                while not self._queue:
                    self._idle.notify_all()
                    if self._closed:
                        self._thread = None
                        return
                    self._waiting = True
                    self._ready.wait()
                    self._waiting = False
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                for entry in batch:
                    entry.taken = True
                self._writing = True
            _deliver(self._write_batch(batch))

    def _write_batch(self, batch: list[_Entry[Item, Outcome]]) -> Finished[Item, Outcome]:
        """Each entry of the batch with its outcome, and the queued ones failed with it."""
        try:
            outcomes = self._write([entry.item for entry in batch])
        except Exception as error:  # a bug in `write`: fail its callers, keep the writer
            log.exception("group commit write failed")
            outcomes = [error] * len(batch)
        finished: Finished[Item, Outcome] = list(zip(batch, outcomes, strict=True))
        failure = self._fail_queued_on
        if failure is not None and all(isinstance(o, failure) for o in outcomes):
            # The queued would wait their turn for the same error: give it now.
            with self._lock:
                for entry in self._queue:
                    entry.taken = True
                    finished.append((entry, outcomes[0]))
                self._queue.clear()
        return finished


def _deliver(finished: Finished[Item, Outcome]) -> None:
    """Hand outcomes to their callers' event loops, one hand-over per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, Finished[Item, Outcome]] = {}
    for entry, outcome in finished:
        by_loop.setdefault(entry.loop, []).append((entry, outcome))
    for loop, outcomes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
            loop.call_soon_threadsafe(_settle, outcomes)


def _settle(finished: Finished[Item, Outcome]) -> None:
    """On the callers' loop: each caller that still waits gets its outcome."""
    for entry, outcome in finished:
        if entry.future.done():  # timed out or cancelled meanwhile
            continue
        if isinstance(outcome, Exception):
            entry.future.set_exception(outcome)
        else:
            entry.future.set_result(outcome)
