"""Helpers for the test databases."""

from __future__ import annotations

import peewee

from server import storage


def empty_postgres(db: peewee.Database) -> None:
    """Bind the models to the session's PostgreSQL database and delete every row."""
    storage.database.initialize(db)
    with storage.database.connection_context():
        storage.database.execute_sql(
            "TRUNCATE answer, conversation, api_key_organisation, api_key, organisation "
            "RESTART IDENTITY CASCADE"
        )
