"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from playhouse.schema_diff import diff_models

from server import connections, models, storage

MODELS = [
    models.OrganisationRow,
    models.ConversationRow,
    models.AnswerRow,
    models.ApiKeyRow,
    models.ApiKeyOrganisationRow,
]


def test_migrated_schema_matches_the_models(database: str) -> None:
    with connections.reading():
        difference = diff_models(storage.database.obj, MODELS)
    assert not difference, str(difference)


def test_migrating_again_changes_nothing(database: str) -> None:
    assert connections.migrate() == []
