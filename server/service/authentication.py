"""Authentication of callers by API key: secret digests, per-key rate limits, the Authenticator.

Secrets are 256-bit random values the service generates, so guessing one is hopeless
and a slow password hash buys nothing: a secret is stored as its HMAC-SHA256 under a
key kept in the database (service_secret `api_key_digest`), and a presented secret
costs one HMAC and a constant-time comparison. Keys issued before digests keep their
salted scrypt hash until their first successful use, which replaces it by the digest.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import replace
from typing import NamedTuple

from server.service.domain import ApiKey, Caller
from server.service.errors import (
    RateLimited,
    StorageFailed,
    StorageUnavailable,
    TooManyFailedAuthentications,
    Unauthenticated,
)
from server.service.limits import Buckets, ExpiringNames, TokenBucket
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
    """Constant-time check of a secret against a salted scrypt hash (slow by design)."""
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


class _Known(NamedTuple):
    """A key as read from the database, the caller it stands for, and when it was read
    (time.monotonic(), taken before the read began)."""

    key: ApiKey
    caller: Caller
    read_at: float


class Authenticator:
    """Turns presented credentials into a Caller, within a per-key rate limit.

    A key is read from the database once per process and remembered; a presented
    secret then costs one HMAC and a constant-time comparison, right or wrong. Only a
    key still holding a legacy scrypt hash costs tens of milliseconds a check: those
    checks are bounded per key (LEGACY_CHECK_BURST at once, then
    LEGACY_CHECKS_PER_SECOND), reserved before they run so parallel guesses cannot
    overrun them, and the first success replaces the hash by the digest.

    Revocation: a remembered key is trusted for REVOCATION_BOUND seconds after the
    database last said it was active, either when it was read or by
    check_revocations(), which asks about every remembered key at once, every
    REVOCATION_CHECK_INTERVAL seconds (keep_checking_revocations). Past that, the
    key is read again before a call is let through, so a key revoked by any process
    is refused everywhere within the bound, even while the check cannot run.

    Strangers: a key id the database did not know (or knew revoked) is refused
    without asking again for FAILED_KEY_SECONDS; each client address has an
    allowance of failed authentications (`failure_rate` a second, `failure_burst`
    at once), and past it a key not remembered is not looked up at all. A rate of
    0 turns a limit off.
    """

    LEGACY_CHECKS_PER_SECOND, LEGACY_CHECK_BURST = 1.0, 4.0
    # Keys remembered at most; all are forgotten when there would be more.
    MAX_REMEMBERED = 10_000
    REVOCATION_BOUND = 1.0
    # Well inside the bound: a check that is late or fails once leaves the keys trusted.
    REVOCATION_CHECK_INTERVAL = 0.25
    FAILED_KEY_SECONDS, MAX_FAILED_KEYS = 10.0, 10_000
    # Client addresses whose failures are counted at most (the least recent forgotten first).
    MAX_ADDRESSES = 10_000
    # Locks that lookups of key ids share: more than the threads that read the database.
    LOOKUP_STRIPES = 64

    def __init__(
        self,
        store: Storage,
        rate: float = 10_000,
        burst: float = 10_000,
        *,
        failure_rate: float = 10,
        failure_burst: float = 100,
    ) -> None:
        self._store = store
        self._rate, self._burst = rate, burst
        self._digest_key: bytes | None = None
        self._keys: dict[str, _Known] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._legacy_checks: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        # Held while a key id is looked up, by the hash of the id.
        self._lookups = [threading.Lock() for _ in range(self.LOOKUP_STRIPES)]
        # The keys the last finished revocation check found active, and when it began.
        self._checked_ids: frozenset[str] = frozenset()
        self._checked_at = float("-inf")
        self._failed_keys = ExpiringNames(self.FAILED_KEY_SECONDS, self.MAX_FAILED_KEYS)
        self._failures = Buckets(failure_rate, failure_burst, self.MAX_ADDRESSES)

    def authenticate(self, key_id: str, secret: str, address: str = "") -> Caller:
        """The caller these credentials stand for, the key checked with the database now
        (read, or for a key remembered, asked whether it is still active); Unauthenticated,
        RateLimited or TooManyFailedAuthentications otherwise.

        Reads the database: call it off the event loop. A wrong secret of a remembered key
        and a key id that failed lately are refused without reading; calls presenting one
        key id take turns, so a crowd of them with a key id that fails reads it once."""
        asked_at = time.monotonic()
        with self._lookups[hash(key_id) % len(self._lookups)]:
            self._refuse_unread(key_id, address)
            if self._digest_key is None:
                self._digest_key = self._store.api_keys.digest_key()
            presented = digest_secret(self._digest_key, secret)
            known = self._keys.get(key_id)
            if known is not None and is_digest(known.key.secret_hash):
                return self._checked_again(known, presented, asked_at)
            if known is None:
                known = self._read_key(key_id)
            elif known.read_at <= asked_at:  # not checked since this call began
                known = self._still_active(known)
            if known is None:
                self._failed_keys.add(key_id)
                raise Unauthenticated()
            if is_digest(known.key.secret_hash):
                if not hmac.compare_digest(presented, known.key.secret_hash):
                    raise Unauthenticated()
            else:
                self._check_legacy(known.key, secret, presented)
            self._take(key_id)
            return known.caller

    def remembered(self, key_id: str, secret: str, address: str = "") -> Caller | None:
        """authenticate() without the database, for a key checked within REVOCATION_BOUND:
        the caller; Unauthenticated for a wrong secret, or for a key id that failed lately;
        TooManyFailedAuthentications for a key this process does not know, from an
        `address` past its allowance of failures; None when the key has to be checked."""
        known, digest_key = self._fresh(key_id), self._digest_key
        if known is None or digest_key is None or not is_digest(known.key.secret_hash):
            self._refuse_unread(key_id, address)
            return None
        if not hmac.compare_digest(digest_secret(digest_key, secret), known.key.secret_hash):
            raise Unauthenticated()
        self._take(key_id)  # over the limit is refused before the database is asked
        return known.caller

    def _refuse_unread(self, key_id: str, address: str) -> None:
        """Refuse, without reading, a key id that failed lately, and a key not remembered
        from an address past its allowance of failures."""
        if self._failed_keys.recent(key_id):
            raise Unauthenticated()
        if key_id not in self._keys and self._failures.empty(address):
            raise TooManyFailedAuthentications()

    def admit(self, caller: Caller) -> bool:
        """Count a call of a caller authenticated before; RateLimited over its key's limit.
        False when the key has to be authenticated again (revoked, or not checked lately)."""
        if self._fresh(caller.key_id) is None:
            return False
        self._take(caller.key_id)
        return True

    def failed(self, address: str) -> bool:
        """Count a failed authentication from `address`; True when it is past its allowance."""
        return not self._failures.take(address)

    def check_revocations(self) -> None:
        """Ask the database which remembered keys are still active; forget the others.
        Reads the database: call it off the event loop."""
        began = time.monotonic()
        with self._lock:
            remembered = frozenset(self._keys)
        active = self._store.api_keys.active(remembered) if remembered else set()
        with self._lock:
            for key_id in remembered - active:
                self._keys.pop(key_id, None)
                self._failed_keys.add(key_id)
            self._checked_ids, self._checked_at = frozenset(active), began

    async def keep_checking_revocations(self) -> None:
        """check_revocations() every REVOCATION_CHECK_INTERVAL, in a thread, until cancelled;
        a check that fails is tried again at the next interval."""
        while True:
            try:
                await asyncio.to_thread(self.check_revocations)
            except (StorageUnavailable, StorageFailed) as error:
                log.debug("revocations not checked: %s", error)
            except Exception:
                # Keys go on being checked one by one as calls need them; this loop goes on.
                log.exception("revocations not checked")
            await asyncio.sleep(self.REVOCATION_CHECK_INTERVAL)

    def _fresh(self, key_id: str) -> _Known | None:
        """The remembered key, if the database said it was active within REVOCATION_BOUND."""
        known = self._keys.get(key_id)
        if known is None:
            return None
        since = time.monotonic() - self.REVOCATION_BOUND
        if known.read_at > since or (self._checked_at > since and key_id in self._checked_ids):
            return known
        return None

    def _checked_again(self, known: _Known, presented: str, asked_at: float) -> Caller:
        """A remembered key's caller: its secret compared in memory and the call counted
        (over the limit is refused before the database is asked), then the key asked
        about, unless a check began after this call asked."""
        if not hmac.compare_digest(presented, known.key.secret_hash):
            raise Unauthenticated()
        self._take(known.key.key_id)
        if known.read_at <= asked_at and self._still_active(known) is None:
            self._failed_keys.add(known.key.key_id)
            raise Unauthenticated()
        return known.caller

    def _still_active(self, known: _Known) -> _Known | None:
        """The key checked again, or None (and forgotten) when it is revoked."""
        checked_at = time.monotonic()
        if known.key.key_id not in self._store.api_keys.active(frozenset({known.key.key_id})):
            with self._lock:
                self._keys.pop(known.key.key_id, None)
            return None
        return self._remember(known.key, checked_at)

    def _read_key(self, key_id: str) -> _Known | None:
        read_at = time.monotonic()
        key = self._store.api_keys.find(key_id)
        if key is None or key.revoked:
            return None
        return self._remember(key, read_at)

    def _remember(self, key: ApiKey, read_at: float) -> _Known:
        known = _Known(
            key, Caller(key_id=key.key_id, organisations=key.organisations, role=key.role), read_at
        )
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
            self._store.api_keys.replace_secret_hash(key.key_id, key.secret_hash, presented)
        except (StorageUnavailable, StorageFailed) as error:
            # The scrypt hash still verifies; the next success stores the digest.
            log.warning("the digest of key %s is not stored yet: %s", key.key_id, error)
        known = self._keys.get(key.key_id)
        self._remember(replace(key, secret_hash=presented), known.read_at if known else 0.0)

    def _take(self, key_id: str) -> None:
        if not self._rate:
            return
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(self._rate, self._burst)
        if not bucket.take():
            raise RateLimited()
