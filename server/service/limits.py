"""Bounded memory of what callers did: token buckets, one per name, and names that failed lately.

Each is safe to use from the event loop and the database threads at once, and
bounded in size, so that no caller can make a process remember without limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class TokenBucket:
    """`rate` calls per second on average, up to `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._updated = burst, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def empty(self) -> bool:
        """True when a take() now would fail; takes nothing."""
        with self._lock:
            self._refill()
            return self._tokens < 1

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now


class Buckets:
    """A TokenBucket per name (a client address), for at most `size` names: the one used
    least lately is forgotten first. A rate of 0 turns the limit off."""

    def __init__(self, rate: float, burst: float, size: int) -> None:
        self._rate, self._burst, self._size = rate, burst, size
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, name: str) -> bool:
        """Take one of `name`'s tokens; False when it has none left."""
        return not self._rate or self._bucket(name).take()

    def empty(self, name: str) -> bool:
        """True when `name` has no token left now (a name never seen has all of its burst)."""
        if not self._rate:
            return False
        with self._lock:
            bucket = self._buckets.get(name)
        return bucket is not None and bucket.empty()

    def _bucket(self, name: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                if len(self._buckets) >= self._size:
                    self._buckets.popitem(last=False)
                bucket = self._buckets[name] = TokenBucket(self._rate, self._burst)
            else:
                self._buckets.move_to_end(name)
            return bucket


class ExpiringNames:
    """Names remembered for `seconds` each, at most `size` of them (the oldest forgotten first)."""

    def __init__(self, seconds: float, size: int) -> None:
        self._seconds, self._size = seconds, size
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self._until.pop(name, None)
            if len(self._until) >= self._size:
                self._until.popitem(last=False)
            self._until[name] = time.monotonic() + self._seconds

    def recent(self, name: str) -> bool:
        """True when `name` was added less than `seconds` ago."""
        with self._lock:
            until = self._until.get(name)
            if until is None:
                return False
            if until > time.monotonic():
                return True
            del self._until[name]
            return False

    def __len__(self) -> int:
        return len(self._until)
