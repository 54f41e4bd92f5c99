"""What `serve --processes N` and each of its server processes say to each other.

The messages go both ways over one multiprocessing Connection per process (pickled):
first the supervisor's Assignment, then the process's Ready once its gRPC server is
up, then the supervisor's commands (Serve, Drain, Stop) as they come.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TypeVar

from server.config import Config


@dataclass(frozen=True)
class Assignment:
    """From the supervisor, first: what the process serves, and as which number."""

    config: Config
    number: int
    local_address: str  # unix:PATH, where Envoy reaches this process alone


@dataclass(frozen=True)
class Ready:
    """From the server process: its gRPC server is up, health NOT_SERVING."""


@dataclass(frozen=True)
class Serve:
    """Report SERVING while the database answers: every part of `serve` is up."""


@dataclass(frozen=True)
class Drain:
    """Report NOT_SERVING, and go on serving until Stop."""


@dataclass(frozen=True)
class Stop:
    """Let the calls in flight finish within `grace` seconds, then exit."""

    grace: float


Command = Serve | Drain | Stop
Message = TypeVar("Message")


class ProtocolError(RuntimeError):
    """The other end sent something this protocol does not have."""


def receive_assignment(connection: Connection) -> Assignment:
    return _expect(connection.recv(), Assignment)


def receive_ready(connection: Connection) -> Ready:
    return _expect(connection.recv(), Ready)


def receive_command(connection: Connection) -> Command:
    message = connection.recv()
    if not isinstance(message, Command):
        raise ProtocolError(f"expected a command, got {message!r}")
    return message


def _expect(message: object, kind: type[Message]) -> Message:
    if not isinstance(message, kind):
        raise ProtocolError(f"expected {kind.__name__}, got {message!r}")
    return message
