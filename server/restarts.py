"""How long a supervisor waits before starting a process that died (Envoy, a server process)."""

from __future__ import annotations

# Seconds between a process's death and its next start: doubled at each start in a row,
# up to the maximum; back to the first once the process has run for RESTART_RESET seconds.
RESTART_DELAYS = (0.1, 5.0)
RESTART_RESET = 30.0


class RestartBackoff:
    """The delays before each start of one supervised process."""

    def __init__(self) -> None:
        self._next = RESTART_DELAYS[0]

    def ran_for(self, seconds: float) -> None:
        """The process ran `seconds` before it died: a long run starts the delays over."""
        if seconds > RESTART_RESET:
            self._next = RESTART_DELAYS[0]

    def next_delay(self) -> float:
        """The wait before the next start; the one after it is twice as long (at most the
        maximum)."""
        delay = self._next
        self._next = min(2 * delay, RESTART_DELAYS[1])
        return delay
