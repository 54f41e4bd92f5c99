"""Authentication without a database: secret hashing, token buckets, and the Authenticator
over the in-memory FakeStorage."""

from __future__ import annotations

import datetime
import time

import pytest

from server.service import authentication
from server.service.authentication import Authenticator, TokenBucket, hash_secret, secret_matches
from server.service.domain import Caller
from server.service.errors import RateLimited, StorageUnavailable, Unauthenticated
from tests.support import CALLER, TEST_SECRET, store_key
from tests.unit.fakes import FakeStorage


def test_secret_matches_is_exact() -> None:
    stored = hash_secret("s3cret")
    assert secret_matches("s3cret", stored)
    assert not secret_matches("s3cret ", stored)
    assert not secret_matches("s3cret", "garbage")


def test_each_hash_of_a_secret_is_salted_and_names_its_scrypt_cost() -> None:
    first, second = hash_secret("same"), hash_secret("same")
    assert first != second
    assert first.startswith("scrypt$16384$8$1$") and second.startswith("scrypt$16384$8$1$")
    assert secret_matches("same", first) and secret_matches("same", second)
    assert "same" not in first


def test_a_hash_with_another_scheme_never_matches() -> None:
    stored = hash_secret("s3cret")
    assert not secret_matches("s3cret", stored.replace("scrypt$", "bcrypt$", 1))


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


def test_has_tokens_takes_none(clock: Clock) -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.has_tokens() and bucket.has_tokens()
    assert bucket.take()
    assert not bucket.has_tokens()


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
    assert authenticator.remembered(CALLER.key_id, "another secret") is None


def test_a_revoked_or_unknown_key_is_unauthenticated(store: FakeStorage) -> None:
    store.revoke_api_key(CALLER.key_id, datetime.datetime.now(datetime.UTC))
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


def test_a_key_guessed_at_too_often_is_refused_unchecked_and_other_keys_are_not(
    store: FakeStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_key(store, "other", "D10")
    authenticator = Authenticator(store)
    for _ in range(int(Authenticator.FAILURE_BURST)):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate(CALLER.key_id, "a guess")
    checked: list[str] = []

    def counted(secret: str, stored: str) -> bool:
        checked.append(secret)
        return secret_matches(secret, stored)

    monkeypatch.setattr(authentication, "secret_matches", counted)
    with pytest.raises(Unauthenticated):  # even the right secret, until the guesses drain
        authenticator.authenticate(CALLER.key_id, TEST_SECRET)
    assert authenticator.authenticate("other", TEST_SECRET).key_id == "other"
    assert checked == [TEST_SECRET]  # the other key's check only
    clock.now += 1 / Authenticator.FAILURES_PER_SECOND
    assert authenticator.authenticate(CALLER.key_id, TEST_SECRET) == CALLER
