"""One gRPC server process of `serve --processes N`, run as
`python -m server.processes.worker FD`.

The supervising `serve` (processes/workers.py) starts it before any gRPC object
exists in it, and talks to it over the connection FD in the messages of
protocol.py: it sends the Assignment, hears Ready when the server is up, and
then says when to report SERVING, when to start draining and when to stop. The
process serves on the shared gRPC port (SO_REUSEPORT) and on a unix socket of its
own, through which Envoy reaches it; its Store, writer, caches and rate limits
are its own. When the connection ends (the supervisor has died) or the process
gets SIGTERM, it drains on its own, as one `serve` does, and exits.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

from server import logs
from server.app import ServerInProcess, open_store, run_event_loop
from server.config import Config
from server.processes.protocol import (
    Assignment,
    Command,
    Drain,
    Ready,
    Serve,
    Stop,
    receive_assignment,
    receive_command,
)
from server.serving import drain
from server.signals import stop_requested_async
from server.tracing import start_tracing

log = logging.getLogger("server.processes.worker")  # run as __main__


@dataclass(frozen=True)
class Alone:
    """No supervisor any more (the connection ended), or SIGTERM: drain and exit."""


def main(argv: Sequence[str]) -> int:
    control = Connection(int(argv[1]))
    assignment = receive_assignment(control)
    config = assignment.config
    name_the_process_in_log_lines(config)
    tracing = start_tracing(config)
    try:
        store = open_store(config, tracing)
        try:
            server = ServerInProcess(
                config, store, tracing, assignment.local_address, assignment.number
            )
            return run_event_loop(serve(assignment, server, control))
        finally:
            store.close()  # closed already, unless serving failed
    finally:
        if tracing is not None:
            tracing.shutdown()


def name_the_process_in_log_lines(config: Config) -> None:
    """Each line names the process that wrote it (text lines as `logger[PID]`): the
    processes of one `serve --processes N` write to the same stream."""
    logs.configure_logging(config.log_level, config.log_format, pid=True)


async def serve(assignment: Assignment, server: ServerInProcess, control: Connection) -> int:
    """Serve until the supervisor says Stop, or drain alone; returns the exit code."""
    config = assignment.config
    loop = asyncio.get_running_loop()
    await server.start()
    commands: asyncio.Queue[Command | Alone] = asyncio.Queue()
    loop.add_reader(control.fileno(), _receive, loop, control, commands)
    stopping = stop_requested_async()
    signalled = loop.create_task(_put_when_set(stopping, commands))
    control.send(Ready())
    while True:
        command = await commands.get()
        if isinstance(command, Serve):
            await server.report_serving()
        elif isinstance(command, Drain):
            await server.report_draining()
        elif isinstance(command, Alone):
            await drain(server, None, config.grace_period, config.drain_delay)
            break
        elif isinstance(command, Stop):
            await server.stop(command.grace)
            break
    signalled.cancel()
    # Calls cut off by the grace period may have queued creates: they are written here.
    await server.close()
    log.info("server process %d stopped", assignment.number)
    return 0


def _receive(
    loop: asyncio.AbstractEventLoop,
    control: Connection,
    commands: asyncio.Queue[Command | Alone],
) -> None:
    command: Command | Alone
    try:
        command = receive_command(control)
    except (EOFError, OSError):
        loop.remove_reader(control.fileno())
        command = Alone()
    commands.put_nowait(command)


async def _put_when_set(stopping: asyncio.Event, commands: asyncio.Queue[Command | Alone]) -> None:
    await stopping.wait()
    commands.put_nowait(Alone())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
