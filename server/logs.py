"""Logging of the command line: standard lines on stderr, the access log written in batches.

The access log has a line per call. Written one at a time, each line cost a
write to stderr, which let go of the GIL and took it back under load (its cost
is in docs/architecture.md, A batched access log). Its
lines are written together instead, at most FLUSH_INTERVAL seconds after
their calls, as nginx and Envoy do with theirs. Every other logger writes each
line at once.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from server.api.interceptors import access_log, call_ids

# A line logged while a call is served names the call (CallIdsFilter); the
# access log's lines, JSON objects, hold the same ids as fields.
FORMAT = "%(asctime)s %(levelname)s %(name)s %(call_ids)s%(message)s"
ACCESS_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# logging.Formatter's, then ",%03d" for the milliseconds.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Seconds an access log line may wait to be written. A process killed with
# SIGKILL loses the lines of its last FLUSH_INTERVAL; one that exits writes them.
FLUSH_INTERVAL = 0.2
# Lines written at once, whatever their age: they bound the memory held.
MAX_LINES = 1000


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes whole lines to a stream in batches, from a thread of its own: every
    `interval` seconds, or as soon as MAX_LINES are waiting; and when flushed or closed."""

    def __init__(self, stream: TextIO, interval: float = FLUSH_INTERVAL) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._second, self._stamp = -1, ""  # the time of the last line, to the second
        # After the logger's name in write_line()'s lines: "[PID]" when processes share a stream.
        self.name_suffix = ""
        # Batches taken and batches written: one writer at a time, in order.
        self._taken = self._written = 0
        self._turns = threading.Condition(threading.Lock())
        self._stopping = threading.Event()
        self._full = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_every, args=(interval,), name="log-flush", daemon=True
        )
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held, as flush() takes it. A line that
        # fails is reported by handleError and never fails the caller's call.
        try:
            self._add(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)

    def write_line(self, name: str, message: str) -> None:
        """An INFO line of logger `name`, as a record formatted with ACCESS_FORMAT reads,
        without the record: the access log's hot path."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(TIME_FORMAT, time.localtime(now))
        stamp = f"{self._stamp},{int((now - second) * 1000):03d}"
        line = f"{stamp} INFO {name}{self.name_suffix} {message}\n"
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._add(line)

    def _add(self, line: str) -> None:
        """Queue a line, with the handler's lock held; the line that fills a batch wakes
        the flusher, once: it takes every line queued by then."""
        self._lines.append(line)
        if len(self._lines) == MAX_LINES:
            self._full.set()

    def flush(self) -> None:
        # The lines are taken under the handler's lock, which emit() holds too, and written
        # without it: a call logging its line never waits on the stream. Batches are
        # written in the order they were taken, one at a time; the turn is waited for
        # outside the handler's lock (which logging.shutdown() holds around flush()).
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            lines, self._lines = self._lines, []
            turn, self._taken = self._taken, self._taken + 1
        with self._turns:
            self._turns.wait_for(lambda: self._written == turn)
        try:
            if lines:
                write_whole_lines(self.stream, "".join(lines))
            self.stream.flush()
        finally:
            with self._turns:
                self._written += 1
                self._turns.notify_all()

    def close(self) -> None:
        self._stopping.set()
        self._full.set()
        try:
            self.flush()
        finally:
            super().close()

    def _flush_every(self, interval: float) -> None:
        while not self._stopping.is_set():
            self._full.wait(interval)
            self._full.clear()
            try:
                self.flush()
            except Exception:  # nowhere to report it: the stream failed
                continue  # its lines are lost, as a StreamHandler's would be


def write_whole_lines(stream: TextIO, lines: str) -> None:
    """Write `lines` so that no other process's write lands inside one of them.

    Processes that share a pipe (the server processes of `serve --processes N`,
    Envoy) have a write of at most PIPE_BUF bytes kept whole; a longer write may be
    split among theirs. A stream with a file descriptor gets the lines in writes
    of whole lines of at most PIPE_BUF bytes each (a longer line alone).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        stream.write(lines)
        return
    stream.flush()  # what the stream holds goes first
    data = lines.encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace")
    view, start = memoryview(data), 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + select.PIPE_BUF) + 1
        if end <= start:  # a line longer than PIPE_BUF
            end = data.find(b"\n", start) + 1 or len(data)
        while start < end:
            start += os.write(fd, view[start:end])


class CallIdsFilter(logging.Filter):
    """Gives each record `call_ids`: "request_id=... trace_id=... " while a call is served
    (in its task, or a thread working for it), else ""."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = call_ids.get()
        record.call_ids = (
            "" if ids is None else f"request_id={ids.request_id} trace_id={ids.trace_id or '-'} "
        )
        return True


def configure_logging() -> None:
    """INFO and above on stderr, each line of a call with its ids; the access log in batches,
    on the same stream."""
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    for root_handler in logging.getLogger().handlers:
        root_handler.addFilter(CallIdsFilter())
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(ACCESS_FORMAT))
    access_log.addHandler(handler)
    access_log.propagate = False


def access_writer() -> Callable[[str], None]:
    """How the access log's lines are written: straight into its batching handler once
    configure_logging() has set it up, else through logging."""
    for handler in access_log.handlers:
        if isinstance(handler, BatchingStreamHandler):
            return functools.partial(handler.write_line, access_log.name)
    return access_log.info
