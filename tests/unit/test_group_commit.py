"""The group commit writer on its own: batching, errors, timeouts and closing."""

from __future__ import annotations

import asyncio
import collections
import gc
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from server.storage.group_commit import Closed, GroupCommit


class Recorder:
    """A `write` that records its batches and can be held until released."""

    def __init__(self, fail: Callable[[int], Exception | None] = lambda item: None) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail = fail

    def __call__(self, batch: list[int]) -> Sequence[int | Exception]:
        self.entered.set()
        assert self.release.wait(5)
        self.batches.append(batch)
        return [self.fail(item) or item * 10 for item in batch]


def submit(writer: GroupCommit[int, int], item: int, timeout: float) -> int:
    """Submit from this thread, on an event loop of its own."""
    return asyncio.run(writer.submit(item, timeout))


def held_writer(recorder: Recorder) -> GroupCommit[int, int]:
    """A writer busy with item 0 until the recorder is released."""
    recorder.release.clear()
    writer: GroupCommit[int, int] = GroupCommit(recorder, max_batch=100)
    threading.Thread(target=submit, args=(writer, 0, 5)).start()
    assert recorder.entered.wait(5)
    return writer


def queue_behind(
    writer: GroupCommit[int, int], items: range, pool: ThreadPoolExecutor
) -> list[Future[int]]:
    """Submit each item from its own thread; returns once all wait in the queue."""
    results = [pool.submit(submit, writer, item, 5) for item in items]
    while writer.queued() < len(items):
        time.sleep(0.01)
    return results


def test_callers_queued_while_the_writer_is_busy_share_one_batch() -> None:
    recorder = Recorder()
    writer = held_writer(recorder)
    with ThreadPoolExecutor(8) as pool:
        results = queue_behind(writer, range(1, 9), pool)
        recorder.release.set()
        assert [r.result() for r in results] == [item * 10 for item in range(1, 9)]
    writer.close(5)
    # In the order the threads queued them.
    assert [recorder.batches[0], sorted(recorder.batches[1])] == [[0], list(range(1, 9))]


def test_an_idle_writer_is_woken_by_each_new_item() -> None:
    recorder = Recorder()
    writer: GroupCommit[int, int] = GroupCommit(recorder, max_batch=100)
    for item in range(3):
        assert submit(writer, item, 5) == item * 10
        time.sleep(0.05)  # the writer has gone back to waiting
    writer.close(5)
    assert recorder.batches == [[0], [1], [2]]


def test_an_item_failing_fails_only_its_caller() -> None:
    recorder = Recorder(fail=lambda item: ValueError(item) if item == 2 else None)
    writer: GroupCommit[int, int] = GroupCommit(recorder, max_batch=100)
    assert submit(writer, 1, 5) == 10
    with pytest.raises(ValueError):
        submit(writer, 2, 5)
    assert submit(writer, 3, 5) == 30
    writer.close(5)


def test_write_raising_fails_the_batch_and_the_writer_goes_on() -> None:
    calls = []

    def write(batch: list[int]) -> list[int]:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    writer: GroupCommit[int, int] = GroupCommit(write, max_batch=100)
    with pytest.raises(RuntimeError, match="boom"):
        submit(writer, 1, 5)
    assert submit(writer, 2, 5) == 2
    writer.close(5)


def test_close_writes_what_is_queued_then_refuses_more() -> None:
    recorder = Recorder()
    writer = held_writer(recorder)
    with ThreadPoolExecutor(4) as pool:
        results = queue_behind(writer, range(1, 5), pool)
        closing = threading.Thread(target=writer.close, args=(5,))
        closing.start()
        recorder.release.set()
        closing.join(5)
        assert [r.result() for r in results] == [10, 20, 30, 40]
    assert sorted(item for batch in recorder.batches for item in batch) == [0, 1, 2, 3, 4]
    with pytest.raises(Closed):
        submit(writer, 5, 5)


def test_a_caller_that_timed_out_before_its_batch_is_not_written() -> None:
    recorder = Recorder()
    writer = held_writer(recorder)
    with pytest.raises(TimeoutError):
        submit(writer, 1, 0.05)
    recorder.release.set()
    assert submit(writer, 2, 5) == 20
    writer.close(5)
    assert recorder.batches == [[0], [2]]


class Unavailable(Exception):
    pass


def test_when_a_whole_batch_is_unavailable_the_queued_fail_at_once() -> None:
    recorder = Recorder(fail=lambda item: Unavailable() if item == 0 else None)
    recorder.release.clear()
    writer: GroupCommit[int, int] = GroupCommit(recorder, max_batch=100, fail_queued_on=Unavailable)
    first = ThreadPoolExecutor(1).submit(submit, writer, 0, 5)
    assert recorder.entered.wait(5)
    with ThreadPoolExecutor(8) as pool:
        queued = queue_behind(writer, range(1, 5), pool)
        recorder.release.set()
        assert isinstance(first.exception(5), Unavailable)
        assert all(isinstance(r.exception(5), Unavailable) for r in queued)
    # Items that arrive afterwards are written again.
    assert submit(writer, 7, 5) == 70
    writer.close(5)
    assert recorder.batches == [[0], [7]]


def test_a_caller_whose_batch_outlasts_its_timeout_gets_timeout_and_the_item_is_written() -> None:
    gates = [threading.Event(), threading.Event()]  # one per batch: open to let it finish
    batches: list[list[int]] = []

    def write(batch: list[int]) -> list[int]:
        batches.append(batch)
        assert gates[len(batches) - 1].wait(5)
        return batch

    writer: GroupCommit[int, int] = GroupCommit(write, max_batch=100)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(submit, writer, 0, 5)
        while not batches:
            time.sleep(0.01)
        second = pool.submit(submit, writer, 1, 5)
        while writer.queued() < 1:
            time.sleep(0.01)
        third = pool.submit(submit, writer, 2, 0.3)
        while writer.queued() < 2:
            time.sleep(0.01)
        gates[0].set()  # [0] is written; [1, 2] is taken, held
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            third.result(5)
        assert time.monotonic() - started < 1
        gates[1].set()
        assert (first.result(5), second.result(5)) == (0, 1)
    writer.close(5)
    assert batches == [[0], [1, 2]]


def test_many_callers_with_timeouts_and_failures_each_get_their_own_outcome() -> None:
    rng = random.Random(6)
    written: list[int] = []

    def write(batch: list[int]) -> list[int | Exception]:
        time.sleep(rng.choice([0, 0.001, 0.005]))
        if rng.random() < 0.1:
            return [Unavailable()] * len(batch)
        written.extend(batch)
        return [item * 10 if item % 7 else ValueError(item) for item in batch]

    writer: GroupCommit[int, int] = GroupCommit(write, max_batch=8, fail_queued_on=Unavailable)

    def call(item: int) -> tuple[float, str]:
        timeout = rng.choice([0.002, 0.02, 5])
        try:
            assert submit(writer, item, timeout) == item * 10
            return timeout, "ok"
        except (Unavailable, TimeoutError, ValueError) as error:
            assert not isinstance(error, ValueError) or item % 7 == 0
            return timeout, type(error).__name__

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, range(3000)))
    writer.close(5)

    outcomes = collections.Counter(outcome for _, outcome in results)
    # The short timeouts expire on a slow machine; five seconds never do.
    assert all(outcome != "TimeoutError" for timeout, outcome in results if timeout == 5)
    assert outcomes["ok"] > 0 and set(outcomes) <= {
        "ok",
        "Unavailable",
        "TimeoutError",
        "ValueError",
    }
    assert outcomes["ok"] + outcomes["ValueError"] <= len(written) == len(set(written))
    assert writer.queued() == 0


def test_callers_on_one_event_loop_share_a_batch_and_each_gets_its_outcome() -> None:
    recorder = Recorder()
    writer = held_writer(recorder)

    async def callers() -> list[int]:
        tasks = [asyncio.create_task(writer.submit(item, 5)) for item in range(1, 9)]
        while writer.queued() < 8:
            await asyncio.sleep(0.01)
        recorder.release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(callers()) == [item * 10 for item in range(1, 9)]
    writer.close(5)
    assert recorder.batches == [[0], list(range(1, 9))]


def test_a_cancelled_caller_leaves_the_queue_and_its_item_is_not_written() -> None:
    recorder = Recorder()
    writer = held_writer(recorder)

    async def cancel_one() -> int:
        cancelled = asyncio.create_task(writer.submit(1, 5))
        kept = asyncio.create_task(writer.submit(2, 5))
        while writer.queued() < 2:
            await asyncio.sleep(0.01)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert writer.queued() == 1
        recorder.release.set()
        return await kept

    assert asyncio.run(cancel_one()) == 20
    writer.close(5)
    assert recorder.batches == [[0], [2]]


def test_on_one_event_loop_a_shorter_timeout_queued_later_still_expires_first() -> None:
    recorder = Recorder()
    writer = held_writer(recorder)

    async def callers() -> tuple[float, int]:
        patient = asyncio.create_task(writer.submit(1, 5))
        hasty = asyncio.create_task(writer.submit(2, 0.05))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await hasty
        waited = time.monotonic() - started
        assert not patient.done()
        recorder.release.set()
        return waited, await patient

    waited, patient = asyncio.run(callers())
    assert waited < 1 and patient == 10
    writer.close(5)
    assert recorder.batches == [[0], [1]]


def test_an_event_loop_that_is_gone_is_not_kept() -> None:
    writer: GroupCommit[int, int] = GroupCommit(Recorder(), max_batch=100)
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(writer.submit(1, 5)) == 10
    loop.close()
    gone = weakref.ref(loop)
    del loop
    assert submit(writer, 2, 5) == 20  # the writer thread lets go of the first batch
    gc.collect()
    assert gone() is None
    writer.close(5)
