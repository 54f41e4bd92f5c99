"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from playhouse.schema_diff import diff_models

from server.storage import models
from server.storage.store import Store

# Every table the models describe: a model added later is compared without being listed.
MODELS = models.BaseModel.__subclasses__()


def test_every_model_is_compared() -> None:
    assert {model.__name__ for model in MODELS} == {
        "OrganisationRow",
        "ConversationRow",
        "AnswerRow",
        "VoteRow",
        "ConversationCountRow",
        "OrganisationCountRow",
        "ServiceSecretRow",
        "ApiKeyRow",
        "ApiKeyOrganisationRow",
        "BlockedTermRow",
        "ModerationDecisionRow",
        "ReportRow",
    }


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.reading():
        difference = diff_models(store.db, MODELS)
    assert not difference, str(difference)


def test_migrating_again_changes_nothing(store: Store) -> None:
    assert store.migrate() == []
