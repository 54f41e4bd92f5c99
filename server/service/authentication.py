"""Authentication of callers by API key: secret hashing, per-key rate limits, the Authenticator.

Authentication runs scrypt once per key and process; later calls compare a
SHA-256 of the presented secret with the remembered one, in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time

from server.service.domain import Caller
from server.service.errors import RateLimited, Unauthenticated
from server.service.ports import Storage

# scrypt cost: about 16 MiB and tens of milliseconds per verification.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """scrypt$N$r$p$salt$hash, base64 fields."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def secret_matches(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against its stored scrypt hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
        )
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)


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

    def has_tokens(self) -> bool:
        with self._lock:
            self._refill()
            return self._tokens >= 1

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now


class Authenticator:
    """Turns presented credentials into a Caller, within a per-key rate limit.

    A key is read and its secret checked with scrypt once per process; later
    calls compare a SHA-256 of the secret with the remembered one, in constant
    time, without asking the database. A key's organisations never change once
    it is issued. Its revocation is enforced where a key does something: the
    statement that stores creates checks, as it stores them, that
    their keys are still active (server.storage.conversations), so a revoked key
    creates nothing from the moment it is revoked. A rate of 0 turns the limit off.
    """

    # Wrong secrets tried per key before scrypt is skipped: each check costs tens
    # of milliseconds of CPU, so guessing must not be a way to load the service.
    FAILURES_PER_SECOND, FAILURE_BURST = 2.0, 10.0

    def __init__(self, store: Storage, rate: float = 10_000, burst: float = 10_000) -> None:
        self._store = store
        self._rate, self._burst = rate, burst
        # key id -> (SHA-256 of the secret that matched, the caller it stands for)
        self._verified: dict[str, tuple[bytes, Caller]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._failures: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def authenticate(self, key_id: str, secret: str) -> Caller:
        """The caller these credentials stand for; Unauthenticated or RateLimited otherwise."""
        caller = self.remembered(key_id, secret)
        if caller is not None:
            return caller
        digest = hashlib.sha256(secret.encode()).digest()
        key = self._store.find_api_key(key_id)
        if key is None or key.revoked or not self._may_try(key_id):
            raise Unauthenticated()
        if not secret_matches(secret, key.secret_hash):
            self._failed(key_id)
            raise Unauthenticated()
        caller = Caller(key_id=key.key_id, organisations=key.organisations)
        with self._lock:
            self._verified[key_id] = (digest, caller)
        self._take(key_id)
        return caller

    def remembered(self, key_id: str, secret: str) -> Caller | None:
        """authenticate() without the database: None for credentials not verified before."""
        remembered = self._verified.get(key_id)
        if remembered is None:
            return None
        if not hmac.compare_digest(remembered[0], hashlib.sha256(secret.encode()).digest()):
            return None
        self._take(key_id)  # over the limit is refused before the database is asked
        return remembered[1]

    def admit(self, caller: Caller) -> None:
        """Count a call of a caller authenticated before; RateLimited over its key's limit."""
        self._take(caller.key_id)

    def _may_try(self, key_id: str) -> bool:
        """False while this key has had too many wrong secrets lately."""
        failures = self._failures.get(key_id)
        return failures is None or failures.has_tokens()

    def _failed(self, key_id: str) -> None:
        with self._lock:
            failures = self._failures.setdefault(
                key_id, TokenBucket(self.FAILURES_PER_SECOND, self.FAILURE_BURST)
            )
        failures.take()

    def _take(self, key_id: str) -> None:
        if not self._rate:
            return
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(self._rate, self._burst)
        if not bucket.take():
            raise RateLimited()
