"""Group commit: one thread writes what many callers queued, a batch per transaction.

A durable commit costs an fsync; concurrent callers share it by being written
together. The writer takes whatever is queued when it is free, so a lone caller
waits for no one and a busy server writes larger batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# What `write` returns for each item: its outcome, or the exception its caller gets.
WriteBatch = Callable[[list[Item]], Sequence[Outcome | Exception]]


class Closed(RuntimeError):
    """The writer is closed and takes no more items."""


class GroupCommit(Generic[Item, Outcome]):
    """A writer thread handing queued items to `write` in batches of at most `max_batch`."""

    def __init__(
        self,
        write: WriteBatch[Item, Outcome],
        *,
        max_batch: int,
        name: str = "group-commit",
        fail_queued_on: type[Exception] | None = None,
    ) -> None:
        """`fail_queued_on`: when every item of a batch fails with this error, the items
        queued while it was written fail with it at once rather than wait their turn
        for the same outcome (a database that is down or locked)."""
        self._write = write
        self._max_batch = max_batch
        self._fail_queued_on = fail_queued_on
        self._queue: queue.SimpleQueue[tuple[Item, Future[Outcome]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item, timeout: float) -> Outcome:
        """Queue `item` and wait until its batch is written; raises what `write` gave it.

        On TimeoutError an item not yet taken is dropped; one already taken may
        still be written.
        """
        future: Future[Outcome] = Future()
        with self._lock:
            if self._closed:
                raise Closed("the writer is closed")
            self._queue.put((item, future))
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Write everything queued so far, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[Item, Future[Outcome]]] = []
            entry = self._queue.get()
            while entry is not None:
                batch.append(entry)
                if len(batch) == self._max_batch or self._queue.empty():
                    break
                entry = self._queue.get()
            stopping = entry is None
            # A caller that timed out and cancelled before this point is not written.
            self._write_batch([(i, f) for i, f in batch if f.set_running_or_notify_cancel()])

    def _write_batch(self, batch: list[tuple[Item, Future[Outcome]]]) -> None:
        if not batch:
            return
        try:
            outcomes = self._write([item for item, _ in batch])
        except Exception as error:  # a bug in `write`: fail its callers, keep the writer
            log.exception("group commit write failed")
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        first = outcomes[0]
        failure = self._fail_queued_on
        if failure is not None and all(isinstance(o, failure) for o in outcomes):
            assert isinstance(first, Exception)
            self._fail_queued(first)

    def _fail_queued(self, error: Exception) -> None:
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is None:  # closing: the writer still has to see it
                self._queue.put(None)
                return
            _, future = entry
            if future.set_running_or_notify_cancel():
                future.set_exception(error)
