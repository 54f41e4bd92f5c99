"""A bounded load of concurrent creates, each with a unique question, and what became of each.

Every call is recorded (its unique question, the outcome, the id when it
succeeded, how long it took), so that a test can compare what clients were
told with what the database holds.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from tests.e2e.service import DEMO_AUTHORIZATION

OK = "OK"
# The request never reached the service: nothing listened on the port.
REFUSED = "REFUSED"
# The connection was reset before any response: a connection still in the
# kernel's accept queue when the listener closed, or one cut off mid-call.
RESET = "RESET"

# A create: the question to ask -> (outcome, the new id when OK).
Create = Callable[[str], tuple[str, int | None]]


@dataclass(frozen=True)
class Call:
    question: str
    outcome: str
    conversation_id: int | None
    started: float
    seconds: float


def grpc_create(
    address: str,
    authorization: str = DEMO_AUTHORIZATION,
    timeout: float = 10,
    *,
    own_connection: bool = False,
) -> Create:
    """Creates over gRPC; the outcome is the status code's name. With `own_connection`,
    the channel opens a connection of its own rather than sharing one with the process's
    other channels to the same address (grpc's global subchannel pool)."""
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    channel = grpc.insecure_channel(address, options=options)
    stub = pb_grpc.ConversationServiceStub(channel)
    metadata = [("authorization", authorization)]

    def create(question: str) -> tuple[str, int | None]:
        request = pb.CreateConversationRequest(
            trkref="D10", first_name="Load", question=question, sku="SKU1"
        )
        try:
            return OK, stub.CreateConversation(request, timeout=timeout, metadata=metadata).id
        except grpc.RpcError as error:
            return error.code().name, None

    return create


def rest_create(
    base_url: str, authorization: str = DEMO_AUTHORIZATION, timeout: float = 10
) -> Create:
    """Creates over REST, a new connection each; the outcome is OK, `HTTP <status>` or an error."""
    url = base_url + "/v4/organisations/D10/conversations"

    def create(question: str) -> tuple[str, int | None]:
        body = json.dumps({"first_name": "Load", "question": question, "sku": "SKU1"}).encode()
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"content-type": "application/json", "authorization": authorization},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return OK, int(json.loads(response.read())["id"])
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}", None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                return REFUSED, None
            if isinstance(error.reason, ConnectionResetError):
                return RESET, None
            return f"ERROR {error.reason!r}", None
        except ConnectionResetError:
            return RESET, None
        except OSError as error:
            return f"ERROR {error!r}", None

    return create


class LoadExhausted(AssertionError):
    """The load ran out of its budget (calls or seconds) while a test still waited on it."""


class Load:
    """A thread per create function calling it until stop(), bounded in count and time.

    The bounds are a budget: a test still waiting on the load when it runs out fails
    at once with LoadExhausted, saying which bound ran out, not with a count of
    successes that merely fell short.
    """

    def __init__(
        self, creates: list[Create], *, max_calls: int = 20_000, max_seconds: float = 300
    ) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._max_calls, self._max_seconds = max_calls, max_seconds
        self._deadline = time.monotonic() + max_seconds
        self._exhausted: str | None = None
        self._prefix = uuid.uuid4().hex[:8]
        self._numbers: Iterator[int] = itertools.count()
        self._threads = [
            threading.Thread(target=self._run, args=(create,), daemon=True) for create in creates
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, create: Create) -> None:
        for _ in range(self._max_calls):
            if self._stopped.is_set():
                return
            if time.monotonic() > self._deadline:
                self._exhaust(f"its {self._max_seconds:g} s ran out")
                return
            with self._lock:
                question = f"load {self._prefix} {next(self._numbers)}"
            started = time.monotonic()
            outcome, conversation_id = create(question)
            call = Call(question, outcome, conversation_id, started, time.monotonic() - started)
            with self._lock:
                self.calls.append(call)
            if outcome == REFUSED:
                time.sleep(0.01)  # nothing listens yet: a pause between attempts, not a wait
        self._exhaust(f"a thread made its {self._max_calls} calls")

    def _exhaust(self, why: str) -> None:
        with self._lock:
            self._exhausted = self._exhausted or why

    def stop(self) -> list[Call]:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.snapshot()

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_for_successes(self, count: int, timeout: float = 30) -> None:
        """Block until `count` more calls than now have succeeded."""
        self.wait_for(count, {OK}, timeout=timeout)

    def wait_for(
        self, count: int, outcomes: set[str], *, started_after: float = 0, timeout: float = 30
    ) -> None:
        """Block until `count` more calls than now, started after `started_after` (a
        time.monotonic()), ended with one of `outcomes`."""

        def matching() -> int:
            return sum(
                1
                for call in self.snapshot()
                if call.outcome in outcomes and call.started > started_after
            )

        target = matching() + count
        deadline = time.monotonic() + timeout
        while matching() < target:
            if self._exhausted:
                raise LoadExhausted(f"the load stopped: {self._exhausted}: {self.outcomes()}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"fewer than {count} calls ended {sorted(outcomes)} in {timeout}s: "
                    f"{self.outcomes()}"
                )
            time.sleep(0.02)  # polling the recorded calls

    def successes(self) -> int:
        return sum(1 for call in self.snapshot() if call.outcome == OK)

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.snapshot():
            counts[call.outcome] = counts.get(call.outcome, 0) + 1
        return counts


def assert_acknowledged_stored_once(calls: list[Call], stored: dict[str, list[int]]) -> None:
    """Every create a client was told succeeded is in the database, once, under its id."""
    for call in calls:
        if call.outcome == OK:
            assert stored.get(call.question) == [call.conversation_id], call
    duplicated = {question: ids for question, ids in stored.items() if len(ids) > 1}
    assert not duplicated
