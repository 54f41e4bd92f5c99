"""The log's handler writes the access log's lines in batches, at most an interval late,
any other line at once and after them, and never lets another process's write land inside
a line; its lines are JSON objects or text for a terminal."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from server import logs


class Writes(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


ACCESS = "conversation_service.access"
RFC3339_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def record(n: int, name: str = ACCESS, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "call %d", (n,), None)


@pytest.fixture
def stream() -> Writes:
    return Writes()


@pytest.fixture
def handler(stream: Writes) -> Iterator[logs.BatchingStreamHandler]:
    handler = logs.BatchingStreamHandler(stream, interval=60)
    yield handler
    handler.close()


def test_lines_wait_then_go_in_one_write(
    stream: Writes, handler: logs.BatchingStreamHandler
) -> None:
    for n in range(3):
        handler.handle(record(n))
    assert stream.writes == []

    handler.flush()

    assert stream.writes == ["call 0\ncall 1\ncall 2\n"]


@pytest.mark.parametrize("through", ["logging", "write_line"])
def test_a_full_batch_is_written_at_once_by_the_flusher(
    stream: Writes, handler: logs.BatchingStreamHandler, through: str
) -> None:
    for n in range(logs.MAX_LINES):
        if through == "logging":
            handler.handle(record(n))
        else:
            handler.write_line("conversation_service.access", {"message": f"call {n}"})
    deadline = time.monotonic() + 5  # long before the handler's interval (60 s)
    while not stream.writes and time.monotonic() < deadline:
        time.sleep(0.01)

    assert len(stream.writes) == 1
    assert stream.writes[0].count("\n") == logs.MAX_LINES


def test_closing_writes_the_lines_waiting(stream: Writes) -> None:
    handler = logs.BatchingStreamHandler(stream, interval=60)
    handler.handle(record(1))
    handler.close()

    assert stream.writes == ["call 1\n"]


def test_lines_are_written_within_the_interval(stream: Writes) -> None:
    handler = logs.BatchingStreamHandler(stream, interval=0.05)
    try:
        handler.handle(record(1))
        deadline = time.monotonic() + 5
        while not stream.writes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        handler.close()

    assert stream.writes[0] == "call 1\n"


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("the stream is gone")


def test_a_stream_that_fails_never_fails_the_caller() -> None:
    handler = logs.BatchingStreamHandler(Broken(), interval=0.01)
    try:
        for n in range(logs.MAX_LINES + 1):
            handler.handle(record(n))  # the full batch fails to be written
        time.sleep(0.05)  # and so does the flusher's
        handler.handle(record(0))
    finally:
        with pytest.raises(OSError):  # only flush() and close() say so
            handler.close()


def test_another_logger_line_goes_at_once_after_the_lines_waiting(
    stream: Writes, handler: logs.BatchingStreamHandler
) -> None:
    handler.setFormatter(logs.JsonLines())
    handler.handle(record(1))
    handler.write_line(ACCESS, {"message": "call 2"})
    handler.handle(record(3, name="server.app", level=logging.ERROR))

    lines = [json.loads(line) for line in "".join(stream.writes).splitlines()]
    assert [line["message"] for line in lines] == ["call 1", "call 2", "call 3"]
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)


def test_a_json_line_has_time_level_logger_pid_and_message(
    stream: Writes, handler: logs.BatchingStreamHandler
) -> None:
    handler.setFormatter(logs.JsonLines())
    handler.handle(record(7, name="server.app", level=logging.WARNING))

    [line] = "".join(stream.writes).splitlines()
    fields = json.loads(line)
    assert list(fields) == ["time", "level", "logger", "pid", "message"]
    assert re.fullmatch(RFC3339_UTC, fields["time"])
    assert fields["level"] == "warning" and fields["logger"] == "server.app"
    assert fields["pid"] == os.getpid() and fields["message"] == "call 7"


@pytest.mark.parametrize("lines", [logs.JsonLines(), logs.TextLines()])
def test_a_line_written_directly_reads_as_a_formatted_record(
    stream: Writes, handler: logs.BatchingStreamHandler, lines: logs.Lines
) -> None:
    handler.setFormatter(lines)
    fields = {"message": "m", "event": "rpc"}
    message = logging.LogRecord(ACCESS, logging.INFO, __file__, 1, "", (), None)
    message.msg = fields  # a dict: its keys are the line's fields
    formatted = handler.format(message)
    handler.write_line(ACCESS, fields)
    handler.flush()

    [written] = stream.writes
    time = re.compile(RFC3339_UTC)
    assert time.sub("T", written) == time.sub("T", formatted) + "\n"


def test_a_text_line_escapes_what_a_terminal_would_act_on() -> None:
    hostile = "x\nCRITICAL server.app FAKE: admin key rotated\x1b[2J\x9b"
    line = logs.TextLines().format(
        logging.LogRecord("server.app", logging.INFO, __file__, 1, "%s", (hostile,), None)
    )

    assert re.fullmatch(
        rf"{RFC3339_UTC} INFO server\.app x\\nCRITICAL server\.app FAKE: admin key "
        r"rotated\\x1b\[2J\\x9b",
        line,
    ), line


# A process that writes LINES access log lines through the handler to its stderr.
WRITER = """
import logging, sys
from server.logs import BatchingStreamHandler
ACCESS = "conversation_service.access"
handler = BatchingStreamHandler(sys.stderr, interval=60)
name, lines = sys.argv[1], int(sys.argv[2])
for n in range(lines):
    line = (name, n, "x" * 200)
    handler.handle(logging.LogRecord(ACCESS, 20, "", 1, "%s %05d %s", line, None))
handler.flush()
"""
LINES = 3 * logs.MAX_LINES


def test_processes_sharing_a_pipe_never_split_each_others_lines() -> None:
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, select.PIPE_BUF)  # full at once: writers wait
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name, str(LINES)], stderr=write_end)
        for name in ("a", "b")
    ]
    os.close(write_end)
    time.sleep(0.5)  # both have a batch waiting to be written
    output = read_until_closed(read_end, timeout=60)
    codes = [writer.wait(timeout=10) for writer in writers]

    assert codes == [0, 0]
    expected = [f"{name} {n:05d} {'x' * 200}" for name in ("a", "b") for n in range(LINES)]
    assert sorted(output.decode().splitlines()) == expected


def read_until_closed(fd: int, timeout: float) -> bytes:
    """Everything written to a pipe until every writer has closed it, within `timeout` s."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        raise TimeoutError(f"the writers did not finish within {timeout} s")
    finally:
        os.close(fd)
