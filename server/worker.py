"""One gRPC server process of `serve --processes N`, run as `python -m server.worker FD`.

The supervising `serve` (server.workers) starts it before any gRPC object exists
in it, and talks to it over the connection FD: it sends what to serve, hears when
the server is up, and then says when to report SERVING, when to start draining
and when to stop. The process serves on the shared gRPC port (SO_REUSEPORT) and on
a unix socket of its own, through which Envoy reaches it; its Store, writer,
caches and rate limits are its own. When the connection ends (the supervisor has
died) or the process gets SIGTERM, it drains on its own and exits.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from concurrent import futures
from multiprocessing.connection import Connection
from typing import Any

from server import logs, metrics
from server.app import (
    RunningServer,
    drain,
    freeze_startup_objects,
    open_store,
    run_event_loop,
    start_server,
)
from server.config import Config
from server.signals import stop_requested_async
from server.storage.health import DatabaseHealthWatcher
from server.storage.store import Store
from server.tracing import Tracing, start_tracing

log = logging.getLogger("server.worker")  # run as __main__

# From the server process: its gRPC server is up, health NOT_SERVING.
READY = "ready"
# From the supervisor: report SERVING while the database answers (every part is up).
SERVING = "serving"
# From the supervisor: report NOT_SERVING and go on serving until STOP.
DRAINING = "draining"
# From the supervisor, with the seconds the calls in flight get: ("stop", grace).
STOP = "stop"
# No supervisor any more (the connection ended), or SIGTERM: drain and exit.
ALONE = "alone"


class Health:
    """SERVING when the supervisor says every part is up and this process's database probe
    succeeds; NOT_SERVING otherwise. Changed on the event loop only."""

    def __init__(self, running: RunningServer) -> None:
        self._running = running
        self._supervisor_ready = False
        self._database_up = False

    async def supervisor_ready(self) -> None:
        self._supervisor_ready = True
        await self._report()

    async def database(self, up: bool) -> None:
        self._database_up = up
        await self._report()

    async def _report(self) -> None:
        await self._running.mark_serving(self._supervisor_ready and self._database_up)


def main(argv: Sequence[str]) -> int:
    control = Connection(int(argv[1]))
    config, number, local_address = control.recv()
    name_the_process_in_log_lines(config)
    tracing = start_tracing(config)
    try:
        store = open_store(config, tracing)
        try:
            return run_event_loop(serve(config, number, local_address, store, tracing, control))
        finally:
            store.close()  # closed already, unless serving failed
    finally:
        if tracing is not None:
            tracing.shutdown()


def name_the_process_in_log_lines(config: Config) -> None:
    """Each line names the process that wrote it (text lines as `logger[PID]`): the
    processes of one `serve --processes N` write to the same stream."""
    logs.configure_logging(config.log_level, config.log_format, pid=True)


async def serve(
    config: Config,
    number: int,
    local_address: str,
    store: Store,
    tracing: Tracing | None,
    control: Connection,
) -> int:
    """Serve until the supervisor says STOP, or drain alone; returns the exit code."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        futures.ThreadPoolExecutor(config.workers, thread_name_prefix="database")
    )
    running = await start_server(
        config, store, tracing, local_address=local_address, shared_port=True
    )
    freeze_startup_objects()
    health = Health(running)
    commands: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(control.fileno(), _receive, loop, control, commands)
    stopping = stop_requested_async()
    signalled = loop.create_task(_put_when_set(stopping, commands))

    def report_database(available: bool) -> None:  # in the watcher's thread
        asyncio.run_coroutine_threadsafe(health.database(available), loop)
        metrics.report_database(available)

    watcher = DatabaseHealthWatcher(store.ping, report_database)
    await asyncio.to_thread(watcher.start)
    control.send(READY)
    log.info("server process %d serving on port %d and %s", number, running.port, local_address)
    while True:
        command = await commands.get()
        if command == SERVING:
            await health.supervisor_ready()
        elif command == DRAINING:
            await running.health.enter_graceful_shutdown()
        elif command == ALONE:
            await drain(running, None, config.grace_period, config.drain_delay)
            break
        elif command[0] == STOP:
            await running.stop(command[1])
            break
    signalled.cancel()
    await asyncio.to_thread(watcher.stop)
    # Calls cut off by the grace period may have queued creates: write them.
    await asyncio.to_thread(store.close)
    log.info("server process %d stopped", number)
    return 0


def _receive(
    loop: asyncio.AbstractEventLoop, control: Connection, commands: asyncio.Queue[Any]
) -> None:
    try:
        command = control.recv()
    except (EOFError, OSError):
        loop.remove_reader(control.fileno())
        command = ALONE
    commands.put_nowait(command)


async def _put_when_set(stopping: asyncio.Event, commands: asyncio.Queue[Any]) -> None:
    await stopping.wait()
    commands.put_nowait(ALONE)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
