"""Logging of the command line: a line per record on stderr, JSON objects (or text for a
terminal), the access log written in batches, every line in time order.

Every logger's lines go through one BatchingStreamHandler. The access log has a line
per call. Written one at a time, each line cost a write to stderr, which let go of the
GIL and took it back under load (its cost is in docs/architecture.md, A batched access
log). Its lines are written together instead, at most FLUSH_INTERVAL seconds after
their calls, as nginx and Envoy do with theirs. A line of any other logger is written
at once, after the access lines queued before it: the stream stays in time order.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

from pythonjsonlogger.json import JsonFormatter

# A line per call, written by the call observers (server/api/observers.py).
access_log = logging.getLogger("conversation_service.access")

# What the access log writes of a call: its fields, the message among them, in order.
Fields = dict[str, Any]


class CallIds(NamedTuple):
    """What ties a log line to its call: the request id, and the trace id when there is one."""

    request_id: str
    trace_id: str | None


# The ids of the call being served, for each of its log lines. Each call runs in
# an asyncio task of its own, so what a call sets here leaves with it.
call_ids: contextvars.ContextVar[CallIds | None] = contextvars.ContextVar("call_ids", default=None)

# --log-level's names.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Seconds an access log line may wait to be written. A process killed with
# SIGKILL loses the lines of its last FLUSH_INTERVAL; one that exits writes them.
FLUSH_INTERVAL = 0.2
# Lines written at once, whatever their age: they bound the memory held.
MAX_LINES = 1000
# What a terminal would act on in a text line: control characters, C0 and C1.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UtcClock:
    """RFC 3339 timestamps in UTC to the millisecond (2026-12-07T19:00:43.123Z), the
    formatting of a second done once."""

    def __init__(self) -> None:
        self._second, self._prefix = -1, ""

    def stamp(self, seconds: float) -> str:
        second = int(seconds)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((seconds - second) * 1000):03d}Z"


def escape_controls(text: str) -> str:
    """`text` with its control characters written as Python escapes (\\n, \\x1b)."""
    return CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


class JsonLines(JsonFormatter):
    """A record as one JSON object: time, level, logger, pid, message, the call's
    request_id and trace_id when it is logged in a call, then the record's extra fields
    (or those of a dict logged as the message)."""

    def __init__(self) -> None:
        super().__init__(["message"])
        self._clock = UtcClock()
        self._pid = os.getpid()  # each process configures its logging itself
        # The access log's fields are strings, numbers and None, which json's own encoder
        # writes as the formatter's does: one encoder, made once, not one a line.
        self._encode = json.JSONEncoder().encode

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = self._clock.stamp(record.created)
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["pid"] = record.process
        super().add_fields(log_data, record, message_dict)

    def fields_line(self, seconds: float, logger: str, fields: Fields) -> str:
        """The line of an INFO record whose message is the dict `fields`, as format() would
        write it, without the record."""
        head = {"time": self._clock.stamp(seconds), "level": "info", "logger": logger}
        return self._encode({**head, "pid": self._pid, **fields})


class TextLines(logging.Formatter):
    """A record as a line for a terminal: time, LEVEL, logger ([pid] with `pid`), the call's
    ids, and the message, its control characters escaped."""

    def __init__(self, pid: bool = False) -> None:
        super().__init__()
        self._clock = UtcClock()
        self._pid = f"[{os.getpid()}]" if pid else ""

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg if isinstance(record.msg, dict) else None
        text = json.dumps(message) if message is not None else record.getMessage()
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            trace_id = getattr(record, "trace_id", None) or "-"
            text = f"request_id={request_id} trace_id={trace_id} {text}"
        line = f"{self._head(record.created, record.levelname, record.name)} "
        line += escape_controls(text)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def fields_line(self, seconds: float, logger: str, fields: Fields) -> str:
        return f"{self._head(seconds, 'INFO', logger)} {escape_controls(json.dumps(fields))}"

    def _head(self, seconds: float, level: str, logger: str) -> str:
        return f"{self._clock.stamp(seconds)} {level} {logger}{self._pid}"


Lines = JsonLines | TextLines


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes whole lines to a stream: those of the loggers named in `batched` in batches,
    from a thread of its own, every `interval` seconds, or as soon as MAX_LINES are
    waiting; any other line at once, after the lines waiting."""

    def __init__(
        self,
        stream: TextIO,
        interval: float = FLUSH_INTERVAL,
        batched: frozenset[str] = frozenset({access_log.name}),
    ) -> None:
        super().__init__(stream)
        self._batched = batched
        self._lines: list[str] = []
        self._last = 0.0  # the time of the last line queued: no line goes back in time
        self.lines: Lines = JsonLines()
        # Batches taken and batches written: one writer at a time, in order.
        self._taken = self._written = 0
        self._turns = threading.Condition(threading.Lock())
        self._stopping = threading.Event()
        self._full = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_every, args=(interval,), name="log-flush", daemon=True
        )
        self._flusher.start()

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # logging's
        super().setFormatter(fmt)
        if isinstance(fmt, JsonLines | TextLines):
            self.lines = fmt

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held, as flush() takes it. A line that
        # fails is reported by handleError and never fails the caller's call.
        try:
            # A record made by another thread just before the last line was queued
            # takes that line's time.
            record.created = self._last = max(record.created, self._last)
            self._add(self.format(record) + self.terminator)
            if record.name not in self._batched:
                self.flush()
        except Exception:
            self.handleError(record)

    def write_line(self, name: str, fields: Fields) -> None:
        """An INFO line of logger `name` whose message is the dict `fields`, as a record of
        it would read, without the record: the access log's hot path."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._last = max(time.time(), self._last)
            self._add(self.lines.fields_line(self._last, name, fields) + "\n")

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
    """Gives each record logged while a call is served (in its task, or a thread working
    for it) the call's `request_id` and `trace_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = call_ids.get()
        if ids is not None and not hasattr(record, "request_id"):
            record.request_id, record.trace_id = ids
        return True


def configure_logging(level: str = "info", line_format: str = "json", pid: bool = False) -> None:
    """Lines of `level` and above on stderr, each line of a call with its ids, as JSON
    objects or text (`line_format`); the access log's in batches, on the same stream and
    in time order. `pid` names the process in text lines too (JSON lines always do): the
    processes of `serve --processes N` share the stream."""
    root = logging.getLogger()
    for old in list(root.handlers) + list(access_log.handlers):
        root.removeHandler(old)
        access_log.removeHandler(old)
        old.close()
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if line_format == "json" else TextLines(pid))
    handler.addFilter(CallIdsFilter())
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # peewee's debug lines are every statement with its values (shoppers' texts, key
    # digests): never written.
    logging.getLogger("peewee").setLevel(max(LEVELS[level], logging.INFO))
    # The access log's lines are INFO: --log-level warning leaves them out too.
    access_log.addHandler(handler)
    access_log.propagate = False
    # What would reach stderr in a format of its own goes through logging too.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    logging.getLogger("server").critical("uncaught exception", exc_info=(kind, error, trace))


def _log_uncaught_in_thread(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit:
        return
    name = hook.thread.name if hook.thread is not None else "?"
    exc_info = (hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback)
    logging.getLogger("server").error("uncaught exception in thread %s", name, exc_info=exc_info)


def access_writer() -> Callable[[Fields], None]:
    """How the access log's lines are written: straight into its batching handler once
    configure_logging() has set it up, else through logging."""
    for handler in access_log.handlers:
        if isinstance(handler, BatchingStreamHandler):
            if access_log.isEnabledFor(logging.INFO):
                return functools.partial(handler.write_line, access_log.name)
            return lambda fields: None
    return log_access


def log_access(fields: Fields) -> None:
    """An access log line through logging, where no batching handler takes it: its fields
    as one JSON object, the record's message."""
    access_log.info(json.dumps(fields))
