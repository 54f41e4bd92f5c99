"""Health follows the database: a background thread probes it and sets SERVING or NOT_SERVING."""

from __future__ import annotations

import threading
from collections.abc import Callable

from server.service.errors import StorageUnavailable


class DatabaseHealthWatcher:
    """Runs `ping` every `interval` seconds and reports each change of the database's state.

    `report(True)` when the database answers, `report(False)` when it does not;
    a probe is bounded by the database timeout, so a change is seen within
    about interval + timeout. The Store logs each fault, once (FaultPeriods).
    """

    def __init__(
        self, ping: Callable[[], None], report: Callable[[bool], None], interval: float = 1.0
    ) -> None:
        self._ping = ping
        self._report = report
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="database-health", daemon=True)
        self._available: bool | None = None

    def start(self) -> None:
        """Probe once, report, then keep probing in the background."""
        self._probe()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._probe()

    def _probe(self) -> None:
        try:
            self._ping()
            available = True
        except StorageUnavailable:
            available = False
        if available != self._available:
            self._available = available
            self._report(available)
