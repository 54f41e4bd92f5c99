"""Use cases of API keys: issuing, listing and revoking them.

A secret is 256 random bits, shown once, when its key is created, and stored only
as a keyed digest (server.service.authentication checks it).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from server.service.authentication import digest_secret
from server.service.domain import ROLES, ApiKey
from server.service.errors import ApiKeyNotFound, FieldViolation, InvalidRequest, Reason
from server.service.ports import Storage

# The documented key of the demo setup (`serve --demo`), for the demo organisation only.
DEMO_KEY_ID = "demo"
DEMO_SECRET = "demo-secret"

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class IssuedKey:
    """A new key as its owner sees it once: the secret is not stored anywhere."""

    key_id: str
    secret: str
    organisations: frozenset[str]


def create_key(
    store: Storage,
    organisations: Iterable[str],
    *,
    key_id: str | None = None,
    secret: str | None = None,
    clock: Clock = utc_now,
    role: str = "shopper",
) -> IssuedKey:
    """Issue a key for existing organisations; random id and secret unless given. A
    `moderator` key also reads the moderation queue and decides."""
    if role not in ROLES:
        raise InvalidRequest(
            [FieldViolation("role", Reason.UNKNOWN_ROLE, "must be 'shopper' or 'moderator'")]
        )
    trkrefs = frozenset(organisations)
    issued = IssuedKey(
        key_id=key_id or f"key_{secrets.token_hex(8)}",
        # 32 bytes: 256 bits, which no one guesses, so one HMAC is all a check needs.
        secret=secret or secrets.token_urlsafe(32),
        organisations=trkrefs,
    )
    key = ApiKey(
        key_id=issued.key_id,
        organisations=trkrefs,
        created_at=clock(),
        revoked_at=None,
        secret_hash=digest_secret(store.api_keys.digest_key(), issued.secret),
        role=role,
    )
    store.api_keys.add(key)
    return issued


def list_keys(store: Storage) -> list[ApiKey]:
    return store.api_keys.list_all()


def revoke_key(store: Storage, key_id: str, clock: Clock = utc_now) -> None:
    if not store.api_keys.revoke(key_id, clock()):
        raise ApiKeyNotFound(key_id)
