"""The messages between `serve` and its server processes are typed, and nothing else passes."""

from __future__ import annotations

from multiprocessing import Pipe

import pytest

from server.config import Config
from server.processes.protocol import (
    Assignment,
    Drain,
    ProtocolError,
    Ready,
    Serve,
    Stop,
    receive_assignment,
    receive_command,
    receive_ready,
)


def test_each_message_arrives_as_the_dataclass_sent() -> None:
    supervisor, process = Pipe()
    assignment = Assignment(Config(workers=3), 2, "unix:/run/process-2.sock")
    supervisor.send(assignment)
    assert receive_assignment(process) == assignment
    process.send(Ready())
    assert receive_ready(supervisor) == Ready()
    for command in (Serve(), Drain(), Stop(grace=2.5)):
        supervisor.send(command)
        assert receive_command(process) == command


@pytest.mark.parametrize("message", ["serving", ("stop", 2.5), Ready()])
def test_anything_but_a_command_is_refused(message: object) -> None:
    supervisor, process = Pipe()
    supervisor.send(message)
    with pytest.raises(ProtocolError, match="expected a command"):
        receive_command(process)
