"""The delays before a supervised process (Envoy, a server process) is started again."""

from __future__ import annotations

from server.supervisor import RESTART_DELAYS, RESTART_RESET, RestartBackoff


def test_delays_double_up_to_the_maximum_and_start_over_after_a_long_run() -> None:
    backoff = RestartBackoff()
    delays = []
    for _ in range(8):
        backoff.ran_for(1.0)
        delays.append(backoff.next_delay())

    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, RESTART_DELAYS[1], RESTART_DELAYS[1]]
    backoff.ran_for(RESTART_RESET + 1)
    assert backoff.next_delay() == RESTART_DELAYS[0]
