"""The units of work of API keys: the Store's room for them (store.api_keys), as moderation
has its own (moderation_store.py); their queries are api_keys.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.storage import api_keys

if TYPE_CHECKING:
    import datetime

    from server.service.domain import ApiKey
    from server.storage.store import Store


class ApiKeys:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._digest_key: bytes | None = None

    def add(self, key: ApiKey) -> None:
        """Store a key; OrganisationNotFound when one of its trkrefs names no organisation."""
        with self._store.session():
            api_keys.insert_api_key(key)

    def find(self, key_id: str) -> ApiKey | None:
        with self._store.reading():
            return api_keys.find_api_key(key_id)

    def list_all(self) -> list[ApiKey]:
        with self._store.reading():
            return api_keys.list_api_keys()

    def revoke(self, key_id: str, at: datetime.datetime) -> bool:
        """Mark a key revoked; False when no such key is active."""
        with self._store.session():
            return api_keys.revoke_api_key(key_id, at)

    def active(self, key_ids: frozenset[str]) -> set[str]:
        """Which of these keys exist and are not revoked, in one unit of work."""
        with self._store.reading():
            return api_keys.active_keys(set(key_ids))

    def replace_secret_hash(self, key_id: str, old: str, new: str) -> bool:
        """Store a key's digest in place of its legacy hash; False when the hash changed."""
        with self._store.session():
            return api_keys.replace_secret_hash(key_id, old, new)

    def digest_key(self) -> bytes:
        """The key API secrets are digested with, shared by every replica through the database."""
        if self._digest_key is None:
            self._digest_key = self._store.read_secret("api_key_digest")
        return self._digest_key
