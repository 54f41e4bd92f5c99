"""Queries of API keys and the organisations each may reach, run inside a unit of work."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable
from typing import Any, cast

import peewee

from server.service.domain import ApiKey
from server.service.errors import OrganisationNotFound
from server.storage.models import (
    ApiKeyOrganisationRow,
    ApiKeyRow,
    OrganisationRow,
    database,
    naive_utc,
    utc,
)


def insert_api_key(key: ApiKey) -> None:
    """Store a key and its organisations; every trkref must name an organisation."""
    organisations = list(
        OrganisationRow.select().where(OrganisationRow.trkref.in_(sorted(key.organisations)))
    )
    missing = key.organisations - {row.trkref for row in organisations}
    if missing:
        raise OrganisationNotFound(sorted(missing)[0])
    row = ApiKeyRow.create(
        key_id=key.key_id,
        secret_hash=key.secret_hash,
        created_at=naive_utc(key.created_at),
        revoked_at=None,
        role=key.role,
    )
    ApiKeyOrganisationRow.insert_many(
        [{"api_key": row.id, "organisation": organisation.id} for organisation in organisations]
    ).execute()


def find_api_key(key_id: str) -> ApiKey | None:
    """The key with its organisations, in one query: the one every authenticated call runs."""
    found = _api_keys(ApiKeyRow.raw(_find_api_key_sql(database.obj), key_id))
    return found[0] if found else None


@functools.lru_cache(maxsize=8)
def _find_api_key_sql(db: peewee.Database) -> str:
    """find_api_key's SQL, built by peewee once per database: building cost more than running."""
    sql, _ = _api_keys_query().where(ApiKeyRow.key_id == "").sql()
    return str(sql)


def list_api_keys() -> list[ApiKey]:
    return _api_keys(_api_keys_query())


def revoke_api_key(key_id: str, at: datetime.datetime) -> bool:
    """Mark a key revoked; False when no such key is active."""
    updated = (
        ApiKeyRow.update(revoked_at=naive_utc(at))
        .where((ApiKeyRow.key_id == key_id) & ApiKeyRow.revoked_at.is_null())
        .execute()
    )
    return bool(updated)


def replace_secret_hash(key_id: str, old: str, new: str) -> bool:
    """Store `new` as the key's secret hash if it still holds `old`; False otherwise."""
    updated = (
        ApiKeyRow.update(secret_hash=new)
        .where((ApiKeyRow.key_id == key_id) & (ApiKeyRow.secret_hash == old))
        .execute()
    )
    return bool(updated)


def active_keys(key_ids: set[str], db: peewee.Database | None = None) -> set[str]:
    """Which of these keys are not revoked; on `db` when given (a writer's transaction)."""
    active = ApiKeyRow.select(ApiKeyRow.key_id).where(
        ApiKeyRow.key_id.in_(sorted(key_ids)) & ApiKeyRow.revoked_at.is_null()
    )
    if db is not None:
        active = active.bind(db)
    return {row.key_id for row in active}


def _api_keys_query() -> peewee.ModelSelect[ApiKeyRow]:
    return (
        ApiKeyRow.select(ApiKeyRow, OrganisationRow.trkref)
        .join(ApiKeyOrganisationRow, peewee.JOIN.LEFT_OUTER)
        .join(OrganisationRow, peewee.JOIN.LEFT_OUTER)
        .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    )


def _api_keys(query: peewee.ModelSelect[ApiKeyRow] | peewee.ModelRaw) -> list[ApiKey]:
    keys: dict[str, dict[str, Any]] = {}
    trkrefs: dict[str, set[str]] = {}
    # peewee's types say model instances; .dicts() yields plain rows.
    rows = cast(Iterable[dict[str, Any]], query.dicts())
    for row in rows:
        keys.setdefault(row["key_id"], row)
        trkrefs.setdefault(row["key_id"], set())
        if row["trkref"] is not None:
            trkrefs[row["key_id"]].add(row["trkref"])
    return [
        ApiKey(
            key_id=key_id,
            organisations=frozenset(trkrefs[key_id]),
            created_at=utc(row["created_at"]),
            revoked_at=None if row["revoked_at"] is None else utc(row["revoked_at"]),
            secret_hash=row["secret_hash"],
            role=row["role"],
        )
        for key_id, row in keys.items()
    ]
