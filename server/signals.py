"""Shutdown requests: SIGTERM and SIGINT set an event the service waits on."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_requested() -> threading.Event:
    """An event set on the first SIGTERM or SIGINT; call it from the main thread."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _stop(signal.Signals(signum), stopping.set)

    for signum in SIGNALS:
        signal.signal(signum, on_signal)
    return stopping


def stop_requested_async() -> asyncio.Event:
    """The same for the running event loop, in which the event is set."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, _stop, signum, stopping.set)
    return stopping


def _stop(signum: signal.Signals, stop: Callable[[], None]) -> None:
    log.info("received %s, shutting down", signum.name)
    stop()
