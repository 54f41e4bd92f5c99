"""Authentication of callers by API key: secret digests, per-key rate limits, the Authenticator.

Secrets are 256-bit random values the service generates, so guessing one is hopeless
and a slow password hash buys nothing: a secret is stored as its HMAC-SHA256 under a
key kept in the database (service_secret `api_key_digest`), and a presented secret
costs one HMAC and a constant-time comparison. Keys issued before digests keep their
salted scrypt hash until their first successful use, which replaces it by the digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import replace

from server.service.domain import ApiKey, Caller
from server.service.errors import RateLimited, StorageFailed, StorageUnavailable, Unauthenticated
from server.service.ports import Storage

log = logging.getLogger(__name__)

DIGEST_SCHEME = "hmac-sha256"
# The scheme of keys issued before digests: scrypt$N$r$p$salt$hash, base64 fields.
LEGACY_SCHEME = "scrypt"
SCRYPT_MAXMEM = 64 * 1024 * 1024


def digest_secret(digest_key: bytes, secret: str) -> str:
    """What is stored of a secret: hmac-sha256$HEX, keyed by the service's digest key."""
    mac = hmac.new(digest_key, secret.encode(), hashlib.sha256).hexdigest()
    return f"{DIGEST_SCHEME}${mac}"


def is_digest(stored: str) -> bool:
    return stored.startswith(DIGEST_SCHEME + "$")


def legacy_secret_matches(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against a salted scrypt hash (tens of ms of CPU)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != LEGACY_SCHEME:
            return False
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
    return hmac.compare_digest(actual, expected)


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

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now


class Authenticator:
    """Turns presented credentials into a Caller, within a per-key rate limit.

    A key is read from the database once per process and remembered; a presented
    secret then costs one HMAC and a constant-time comparison, right or wrong, so
    wrong guesses need no throttle and can never lock the key's owner out. Only a
    key still holding a legacy scrypt hash costs tens of milliseconds a check: those
    checks are bounded per key (LEGACY_CHECK_BURST at once, then
    LEGACY_CHECKS_PER_SECOND), reserved before they run so parallel guesses cannot
    overrun them, and the first success replaces the hash by the digest.

    A key's organisations never change once it is issued. Its revocation is
    enforced where a key does something: the statement that stores creates checks,
    as it stores them, that their keys are still active
    (server.storage.conversations). A rate of 0 turns the limit off.
    """

    LEGACY_CHECKS_PER_SECOND, LEGACY_CHECK_BURST = 1.0, 4.0
    # Keys remembered at most; all are forgotten when there would be more.
    MAX_REMEMBERED = 10_000

    def __init__(self, store: Storage, rate: float = 10_000, burst: float = 10_000) -> None:
        self._store = store
        self._rate, self._burst = rate, burst
        self._digest_key: bytes | None = None
        # key id -> the key as read, and the caller it stands for
        self._keys: dict[str, tuple[ApiKey, Caller]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._legacy_checks: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def authenticate(self, key_id: str, secret: str) -> Caller:
        """The caller these credentials stand for; Unauthenticated or RateLimited otherwise.

        May read the database: call it off the event loop."""
        caller = self.remembered(key_id, secret)
        if caller is not None:
            return caller
        if self._digest_key is None:
            self._digest_key = self._store.api_key_digest_key()
        presented = digest_secret(self._digest_key, secret)
        known = self._keys.get(key_id) or self._read_key(key_id)
        if known is None or known[0].revoked:
            raise Unauthenticated()
        key, caller = known
        if is_digest(key.secret_hash):
            if not hmac.compare_digest(presented, key.secret_hash):
                raise Unauthenticated()
        else:
            self._check_legacy(key, secret, presented)
        self._take(key_id)
        return caller

    def remembered(self, key_id: str, secret: str) -> Caller | None:
        """authenticate() without the database: the caller, Unauthenticated for a wrong
        secret of a key read before, None when the key has to be read (or checked) first."""
        known, digest_key = self._keys.get(key_id), self._digest_key
        if known is None or digest_key is None or not is_digest(known[0].secret_hash):
            return None
        key, caller = known
        if key.revoked or not hmac.compare_digest(
            digest_secret(digest_key, secret), key.secret_hash
        ):
            raise Unauthenticated()
        self._take(key_id)  # over the limit is refused before the database is asked
        return caller

    def admit(self, caller: Caller) -> None:
        """Count a call of a caller authenticated before; RateLimited over its key's limit."""
        self._take(caller.key_id)

    def _read_key(self, key_id: str) -> tuple[ApiKey, Caller] | None:
        key = self._store.find_api_key(key_id)
        if key is None:
            return None
        return self._remember(key)

    def _remember(self, key: ApiKey) -> tuple[ApiKey, Caller]:
        known = (key, Caller(key_id=key.key_id, organisations=key.organisations))
        with self._lock:
            if len(self._keys) >= self.MAX_REMEMBERED:
                self._keys.clear()
            self._keys[key.key_id] = known
        return known

    def _check_legacy(self, key: ApiKey, secret: str, presented: str) -> None:
        """Check a secret against a key's scrypt hash, within the key's budget of such
        checks; on success store the digest instead, so that this is the last one."""
        with self._lock:
            budget = self._legacy_checks.setdefault(
                key.key_id, TokenBucket(self.LEGACY_CHECKS_PER_SECOND, self.LEGACY_CHECK_BURST)
            )
        if not budget.take() or not legacy_secret_matches(secret, key.secret_hash):
            raise Unauthenticated()
        try:
            self._store.replace_secret_hash(key.key_id, key.secret_hash, presented)
        except (StorageUnavailable, StorageFailed) as error:
            # The scrypt hash still verifies; the next success stores the digest.
            log.warning("the digest of key %s is not stored yet: %s", key.key_id, error)
        self._remember(replace(key, secret_hash=presented))

    def _take(self, key_id: str) -> None:
        if not self._rate:
            return
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(self._rate, self._burst)
        if not bucket.take():
            raise RateLimited()
