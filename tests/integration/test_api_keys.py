"""API keys on a real database: issuing, revoking, authenticating, rate limiting, what is stored."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from harness.support import CALLER, TEST_SECRET, create, legacy_scrypt_hash, store_key
from harness.support import NEW_CONVERSATION as NEW
from server.service import api_keys, authentication, organisations
from server.service.authentication import Authenticator
from server.service.domain import ApiKey, Organisation
from server.service.errors import (
    ApiKeyNotFound,
    OrganisationNotFound,
    RateLimited,
    StorageUnavailable,
    Unauthenticated,
)
from server.storage.store import Store


def test_created_key_authenticates_for_its_organisations(
    store: Store, organisation: Organisation
) -> None:
    issued = api_keys.create_key(store, ["D10"])

    caller = Authenticator(store).authenticate(issued.key_id, issued.secret)

    assert caller.key_id == issued.key_id
    assert caller.organisations == frozenset({"D10"})
    assert issued.key_id.startswith("key_") and len(issued.secret) >= 40


def test_a_key_may_reach_several_organisations(store: Store, organisation: Organisation) -> None:
    organisations.add_organisation(store, Organisation("E20", "Second", "de-DE"))
    issued = api_keys.create_key(store, ["D10", "E20"])
    [listed] = [k for k in api_keys.list_keys(store) if k.key_id == issued.key_id]
    assert listed.organisations == frozenset({"D10", "E20"})
    assert Authenticator(store).authenticate(issued.key_id, issued.secret).organisations == {
        "D10",
        "E20",
    }


def test_key_for_an_unknown_organisation_is_refused(
    store: Store, organisation: Organisation
) -> None:
    with pytest.raises(OrganisationNotFound):
        api_keys.create_key(store, ["D10", "NOPE"])
    assert [k.key_id for k in api_keys.list_keys(store)] == [CALLER.key_id]


@pytest.mark.parametrize(
    ("key_id", "secret"),
    [("unknown", "whatever"), ("KEY", "wrong secret"), ("KEY", ""), ("KEY", "SECRET-but-longer")],
)
def test_wrong_credentials_are_unauthenticated(
    store: Store, organisation: Organisation, key_id: str, secret: str
) -> None:
    issued = api_keys.create_key(store, ["D10"])
    authenticator = Authenticator(store)
    authenticator.authenticate(issued.key_id, issued.secret)  # remembered from now on
    key_id = key_id.replace("KEY", issued.key_id)
    secret = secret.replace("SECRET", issued.secret)
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(key_id, secret)


def test_revoked_key_creates_nothing_from_the_moment_it_is_revoked(
    store: Store, organisation: Organisation
) -> None:
    issued = api_keys.create_key(store, ["D10"])
    authenticator = Authenticator(store)
    caller = authenticator.authenticate(issued.key_id, issued.secret)
    create(store, NEW, caller)

    api_keys.revoke_key(store, issued.key_id)

    # A caller authenticated before the revocation writes nothing after it; checked with
    # the database, the key is refused at once.
    with pytest.raises(Unauthenticated):
        create(store, NEW, caller)
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(issued.key_id, issued.secret)
    assert store.count_conversations() == 1
    # A process that has not seen it refuses it outright.
    with pytest.raises(Unauthenticated):
        Authenticator(store).authenticate(issued.key_id, issued.secret)
    [listed] = [k for k in api_keys.list_keys(store) if k.key_id == issued.key_id]
    assert listed.revoked
    with pytest.raises(ApiKeyNotFound):
        api_keys.revoke_key(store, issued.key_id)


def test_rate_limit_refuses_without_asking_the_database(
    store: Store, organisation: Organisation
) -> None:
    issued = api_keys.create_key(store, ["D10"])
    authenticator = Authenticator(store, rate=0.001, burst=2)
    authenticator.authenticate(issued.key_id, issued.secret)
    authenticator.authenticate(issued.key_id, issued.secret)

    # From now on the models are bound to a database nothing listens for.
    unreachable = Store.open("postgresql://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(RateLimited):
            authenticator.authenticate(issued.key_id, issued.secret)
        # Under the limit the same call would need the database (revocation).
        with pytest.raises(StorageUnavailable):
            Authenticator(unreachable).authenticate(issued.key_id, issued.secret)
    finally:
        unreachable.close()


def test_other_keys_have_their_own_allowance(store: Store, organisation: Organisation) -> None:
    first, second = api_keys.create_key(store, ["D10"]), api_keys.create_key(store, ["D10"])
    authenticator = Authenticator(store, rate=0.001, burst=1)
    authenticator.authenticate(first.key_id, first.secret)
    with pytest.raises(RateLimited):
        authenticator.authenticate(first.key_id, first.secret)
    assert authenticator.authenticate(second.key_id, second.secret).key_id == second.key_id


def test_rate_zero_means_no_limit(store: Store, organisation: Organisation) -> None:
    issued = api_keys.create_key(store, ["D10"])
    authenticator = Authenticator(store, rate=0, burst=0)
    # Burst 0 would refuse the first call were there a limit; none is refused.
    callers = [authenticator.authenticate(issued.key_id, issued.secret) for _ in range(1000)]
    assert {caller.key_id for caller in callers} == {issued.key_id}
    for caller in callers:
        authenticator.admit(caller)


def test_secret_is_stored_only_as_its_keyed_digest(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/keys.db")
    store.migrate()
    organisations.add_organisation(store, Organisation("D10", "Demo", "en-GB"))
    first = api_keys.create_key(store, ["D10"], secret="same")
    second = api_keys.create_key(store, ["D10"])
    digest_key = store.api_keys.digest_key()
    store.close()

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("keys.db"))
    assert second.secret.encode() not in raw
    assert first.key_id.encode() in raw
    hashes = {k.key_id: k.secret_hash for k in _keys(tmp_path)}
    assert hashes[first.key_id] == authentication.digest_secret(digest_key, "same")
    assert len(digest_key) == 32


def test_each_database_digests_with_its_own_key(tmp_path: Path) -> None:
    keys = set()
    for name in ("one", "two"):
        store = Store.open(f"sqlite:///{tmp_path}/{name}.db")
        store.migrate()
        keys.add(store.api_keys.digest_key())
        store.close()
    assert len(keys) == 2


def _keys(tmp_path: Path) -> list[ApiKey]:
    store = Store.open(f"sqlite:///{tmp_path}/keys.db")
    try:
        return api_keys.list_keys(store)
    finally:
        store.close()


def test_list_shows_creation_time(store: Store, organisation: Organisation) -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    api_keys.create_key(store, ["D10"], key_id="fixed", secret="x" * 20, clock=lambda: moment)
    [listed] = [k for k in api_keys.list_keys(store) if k.key_id == "fixed"]
    assert (listed.key_id, listed.created_at, listed.revoked_at) == ("fixed", moment, None)


def test_a_legacy_scrypt_key_verifies_once_then_as_a_digest(
    store: Store, organisation: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_key(store, "legacy", "D10", secret_hash=legacy_scrypt_hash(TEST_SECRET))
    checks: list[str] = []
    real_check = authentication.legacy_secret_matches

    def counted_check(secret: str, stored: str) -> bool:
        checks.append(secret)
        return real_check(secret, stored)

    monkeypatch.setattr(authentication, "legacy_secret_matches", counted_check)

    assert Authenticator(store).authenticate("legacy", TEST_SECRET).key_id == "legacy"
    [stored] = [key for key in store.api_keys.list_all() if key.key_id == "legacy"]
    assert stored.secret_hash == authentication.digest_secret(
        store.api_keys.digest_key(), TEST_SECRET
    )
    later = Authenticator(store)
    for guess in range(25):
        with pytest.raises(Unauthenticated):
            later.authenticate("legacy", f"guess {guess}")
    assert later.authenticate("legacy", TEST_SECRET).key_id == "legacy"
    assert checks == [TEST_SECRET]
