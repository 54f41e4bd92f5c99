"""Authentication without a database: secret hashing, token buckets, and the Authenticator
over the in-memory FakeStorage."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import threading
import time

import pytest

from harness.support import CALLER, TEST_SECRET, legacy_scrypt_hash, store_key
from server.service import authentication
from server.service.authentication import (
    Authenticator,
    digest_secret,
    legacy_secret_matches,
)
from server.service.domain import Caller
from server.service.errors import (
    RateLimited,
    StorageUnavailable,
    TooManyFailedAuthentications,
    Unauthenticated,
)
from server.service.limits import TokenBucket
from tests.unit.fakes import FakeStorage


def test_a_secret_is_stored_as_its_keyed_digest() -> None:
    stored = digest_secret(b"k" * 32, "s3cret")
    assert stored == "hmac-sha256$" + hmac.new(b"k" * 32, b"s3cret", "sha256").hexdigest()
    assert "s3cret" not in stored
    assert digest_secret(b"another key.....", "s3cret") != stored


def test_a_legacy_scrypt_hash_still_verifies_exactly() -> None:
    stored = legacy_scrypt_hash("s3cret")
    assert legacy_secret_matches("s3cret", stored)
    assert not legacy_secret_matches("s3cret ", stored)
    assert not legacy_secret_matches("s3cret", "garbage")
    assert not legacy_secret_matches("s3cret", stored.replace("scrypt$", "bcrypt$", 1))


class Clock:
    """time.monotonic, as the buckets read it, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    return clock


def test_a_bucket_gives_its_burst_at_once_then_its_rate(clock: Clock) -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token at 2 a second
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 60  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_credentials_verified_once_are_remembered_without_reading_the_key_again(
    store: FakeStorage,
) -> None:
    authenticator = Authenticator(store)
    assert authenticator.remembered(CALLER.key_id, TEST_SECRET) is None
    assert authenticator.authenticate(CALLER.key_id, TEST_SECRET) == CALLER
    reads = store.calls["find_api_key"]

    assert authenticator.remembered(CALLER.key_id, TEST_SECRET) == CALLER
    assert authenticator.authenticate(CALLER.key_id, TEST_SECRET) == CALLER
    assert store.calls["find_api_key"] == reads
    with pytest.raises(Unauthenticated):  # a wrong secret of a key read before
        authenticator.remembered(CALLER.key_id, "another secret")


def test_a_revoked_or_unknown_key_is_unauthenticated(store: FakeStorage) -> None:
    store.api_keys.revoke(CALLER.key_id, datetime.datetime.now(datetime.UTC))
    authenticator = Authenticator(store)
    for key_id in (CALLER.key_id, "unknown"):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate(key_id, TEST_SECRET)


def test_a_database_that_is_down_is_not_taken_for_wrong_credentials(store: FakeStorage) -> None:
    store.unavailable = True
    with pytest.raises(StorageUnavailable):
        Authenticator(store).authenticate(CALLER.key_id, TEST_SECRET)


def test_admitted_calls_count_against_the_key_s_rate(store: FakeStorage, clock: Clock) -> None:
    authenticator = Authenticator(store, rate=1, burst=3)
    caller = authenticator.authenticate(CALLER.key_id, TEST_SECRET)
    authenticator.admit(caller)
    authenticator.admit(caller)
    with pytest.raises(RateLimited):
        authenticator.admit(caller)
    with pytest.raises(RateLimited):
        authenticator.remembered(CALLER.key_id, TEST_SECRET)
    clock.now += 1
    authenticator.admit(caller)
    # Another key's allowance is its own.
    authenticator.admit(Caller("other", frozenset({"D10"})))


def test_wrong_guesses_cost_one_digest_each_and_never_lock_the_owner_out(
    store: FakeStorage,
) -> None:
    authenticator = Authenticator(store)
    for guess in range(1000):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate(CALLER.key_id, f"guess {guess}")
    assert store.calls["find_api_key"] == 1  # read once, then remembered
    assert authenticator.authenticate(CALLER.key_id, TEST_SECRET) == CALLER
    with pytest.raises(Unauthenticated):
        authenticator.remembered(CALLER.key_id, "one more guess")
    assert authenticator.remembered(CALLER.key_id, TEST_SECRET) == CALLER


@pytest.fixture
def scrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The secrets checked against a legacy scrypt hash, in order."""
    checked: list[str] = []

    def counted(secret: str, stored: str) -> bool:
        checked.append(secret)
        return legacy_secret_matches(secret, stored)

    monkeypatch.setattr(authentication, "legacy_secret_matches", counted)
    return checked


def test_a_legacy_key_becomes_a_digest_at_its_first_success(
    store: FakeStorage, scrypt_checks: list[str]
) -> None:
    store_key(store, "legacy", "D10", secret_hash=legacy_scrypt_hash(TEST_SECRET))
    authenticator = Authenticator(store)
    assert authenticator.authenticate("legacy", TEST_SECRET).key_id == "legacy"
    assert store.keys["legacy"].secret_hash == digest_secret(
        store.api_keys.digest_key(), TEST_SECRET
    )
    # Another process reads the digest: no scrypt any more, for the owner or a guesser.
    other = Authenticator(store)
    assert other.authenticate("legacy", TEST_SECRET).key_id == "legacy"
    with pytest.raises(Unauthenticated):
        other.authenticate("legacy", "a guess")
    assert scrypt_checks == [TEST_SECRET]


def test_parallel_guesses_at_a_legacy_key_run_no_more_scrypt_checks_than_its_burst(
    store: FakeStorage, scrypt_checks: list[str], clock: Clock
) -> None:
    store_key(store, "legacy", "D10", secret_hash=legacy_scrypt_hash(TEST_SECRET))
    store_key(store, "other", "D10", secret_hash=legacy_scrypt_hash(TEST_SECRET))
    authenticator = Authenticator(store)
    refused: list[str] = []

    def guess(n: int) -> None:
        try:
            authenticator.authenticate("legacy", f"guess {n}")
        except Unauthenticated:
            refused.append(f"guess {n}")

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(refused) == 64
    assert len(scrypt_checks) == Authenticator.LEGACY_CHECK_BURST
    # Another key's budget is its own; this one's refills with time.
    assert authenticator.authenticate("other", TEST_SECRET).key_id == "other"
    clock.now += 1 / Authenticator.LEGACY_CHECKS_PER_SECOND
    assert authenticator.authenticate("legacy", TEST_SECRET).key_id == "legacy"


def test_a_key_revoked_after_its_first_use_is_refused_on_its_second(store: FakeStorage) -> None:
    authenticator = Authenticator(store)
    assert authenticator.authenticate(CALLER.key_id, TEST_SECRET) == CALLER
    store.api_keys.revoke(CALLER.key_id, datetime.datetime.now(datetime.UTC))

    with pytest.raises(Unauthenticated):
        authenticator.authenticate(CALLER.key_id, TEST_SECRET)


def test_a_remembered_key_is_trusted_for_the_revocation_bound_and_then_checked_again(
    store: FakeStorage, clock: Clock
) -> None:
    # Given a key authenticated, then revoked by another process
    authenticator = Authenticator(store)
    caller = authenticator.authenticate(CALLER.key_id, TEST_SECRET)
    store.api_keys.revoke(CALLER.key_id, datetime.datetime.now(datetime.UTC))

    # Within the bound it is served from memory; past it, it has to be checked
    clock.now += Authenticator.REVOCATION_BOUND / 2
    assert authenticator.admit(caller)
    assert authenticator.remembered(CALLER.key_id, TEST_SECRET) == caller
    clock.now += Authenticator.REVOCATION_BOUND / 2
    assert not authenticator.admit(caller)
    assert authenticator.remembered(CALLER.key_id, TEST_SECRET) is None
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(CALLER.key_id, TEST_SECRET)


def test_a_revocation_check_keeps_active_keys_trusted_and_forgets_revoked_ones(
    store: FakeStorage, clock: Clock
) -> None:
    store_key(store, "other", "D10")
    authenticator = Authenticator(store)
    caller = authenticator.authenticate(CALLER.key_id, TEST_SECRET)
    other = authenticator.authenticate("other", TEST_SECRET)
    store.api_keys.revoke("other", datetime.datetime.now(datetime.UTC))
    reads = store.calls["find_api_key"]

    clock.now += Authenticator.REVOCATION_BOUND * 0.9
    authenticator.check_revocations()
    clock.now += Authenticator.REVOCATION_BOUND * 0.9

    assert authenticator.admit(caller)  # checked 0.9 bound ago, by the check
    assert not authenticator.admit(other)
    with pytest.raises(Unauthenticated):  # forgotten, and failed: not read again
        authenticator.remembered("other", TEST_SECRET)
    assert store.calls["find_api_key"] == reads
    assert store.calls["active_api_keys"] == 1


def test_a_database_down_past_the_bound_is_unavailable_not_a_remembered_caller(
    store: FakeStorage, clock: Clock
) -> None:
    authenticator = Authenticator(store)
    caller = authenticator.authenticate(CALLER.key_id, TEST_SECRET)
    store.unavailable = True
    clock.now += Authenticator.REVOCATION_BOUND
    with pytest.raises(StorageUnavailable):
        authenticator.check_revocations()
    assert not authenticator.admit(caller)
    with pytest.raises(StorageUnavailable):
        authenticator.authenticate(CALLER.key_id, TEST_SECRET)


def test_a_key_id_that_failed_is_refused_without_reading_until_it_is_forgotten(
    store: FakeStorage, clock: Clock
) -> None:
    authenticator = Authenticator(store, failure_rate=0)
    for _ in range(1000):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate("unknown", TEST_SECRET)
    assert store.calls["find_api_key"] == 1
    with pytest.raises(Unauthenticated):
        authenticator.remembered("unknown", TEST_SECRET)

    store_key(store, "unknown", "D10")
    clock.now += Authenticator.FAILED_KEY_SECONDS
    assert authenticator.remembered("unknown", TEST_SECRET) is None
    assert authenticator.authenticate("unknown", TEST_SECRET).key_id == "unknown"


def test_crowded_lookups_of_a_failing_key_id_read_it_once(store: FakeStorage) -> None:
    authenticator = Authenticator(store, failure_rate=0)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            authenticator.authenticate("unknown", TEST_SECRET)
        except Unauthenticated:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == ["refused"] * 32
    assert store.calls["find_api_key"] == 1


def test_past_an_address_allowance_keys_not_remembered_are_not_looked_up(
    store: FakeStorage, clock: Clock
) -> None:
    # Given an address that used up its failures
    authenticator = Authenticator(store, failure_rate=1, failure_burst=3)
    caller = authenticator.authenticate(CALLER.key_id, TEST_SECRET, "192.0.2.1")
    assert [authenticator.failed("192.0.2.1") for _ in range(4)] == [False] * 3 + [True]
    reads = store.calls["find_api_key"]

    # Then from it, a key not remembered is refused unread; a remembered one still serves
    with pytest.raises(TooManyFailedAuthentications):
        authenticator.remembered("stranger", TEST_SECRET, "192.0.2.1")
    with pytest.raises(TooManyFailedAuthentications):
        authenticator.authenticate("stranger", TEST_SECRET, "192.0.2.1")
    assert store.calls["find_api_key"] == reads
    assert authenticator.remembered(CALLER.key_id, TEST_SECRET, "192.0.2.1") == caller
    # Another address's allowance is its own, and this one's refills with time
    assert authenticator.remembered("stranger", TEST_SECRET, "192.0.2.2") is None
    clock.now += 1
    assert authenticator.remembered("stranger", TEST_SECRET, "192.0.2.1") is None


def test_a_legacy_success_whose_digest_cannot_be_stored_is_logged_and_still_remembered(
    store: FakeStorage,
    scrypt_checks: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_key(store, "legacy", "D10", secret_hash=legacy_scrypt_hash(TEST_SECRET))

    def down(key_id: str, old: str, new: str) -> bool:
        raise StorageUnavailable("database unavailable: the fake is down")

    monkeypatch.setattr(store.api_keys, "replace_secret_hash", down)
    authenticator = Authenticator(store)
    assert authenticator.authenticate("legacy", TEST_SECRET).key_id == "legacy"

    assert [r.getMessage() for r in caplog.records if r.name == authentication.__name__] == [
        "the digest of key legacy is not stored yet: database unavailable: the fake is down"
    ]
    # This process checks the key by its digest from now on: no second scrypt check.
    assert authenticator.remembered("legacy", TEST_SECRET) is not None
    assert authenticator.authenticate("legacy", TEST_SECRET).key_id == "legacy"
    assert scrypt_checks == [TEST_SECRET]


def test_remembered_keys_are_all_forgotten_when_one_more_would_pass_the_bound(
    store: FakeStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key_id in ("a", "b", "c"):
        store_key(store, key_id, "D10")
    authenticator = Authenticator(store)
    monkeypatch.setattr(authenticator, "MAX_REMEMBERED", 2)
    authenticator.authenticate("a", TEST_SECRET)
    authenticator.authenticate("b", TEST_SECRET)
    assert authenticator.remembered("a", TEST_SECRET) is not None  # two fit

    authenticator.authenticate("c", TEST_SECRET)  # a third does not: all are forgotten first
    assert authenticator.remembered("a", TEST_SECRET) is None
    assert authenticator.remembered("b", TEST_SECRET) is None
    assert authenticator.remembered("c", TEST_SECRET) is not None


def test_a_legacy_key_read_once_is_not_read_again_for_each_guess(
    store: FakeStorage, clock: Clock
) -> None:
    store_key(store, "legacy", "D10", secret_hash=legacy_scrypt_hash(TEST_SECRET))
    authenticator = Authenticator(store)
    for guess in range(3):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate("legacy", f"guess {guess}")
    assert store.calls["find_api_key"] == 1


def test_a_legacy_hash_of_twice_the_default_cost_verifies() -> None:
    # scrypt with N=2**15, r=8 needs 32 MiB and more: above OpenSSL's default limit.
    salt, n, r, p = b"sixteen byte slt", 2**15, 8, 1
    digest = hashlib.scrypt(b"s3cret", salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    assert legacy_secret_matches("s3cret", f"scrypt${n}${r}${p}${encoded[0]}${encoded[1]}")
