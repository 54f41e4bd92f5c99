"""The peewee models: one row class per table, bound late to `database`.

Bound through a DatabaseProxy, so that one set of models serves SQLite (the
embedded default) and PostgreSQL (production). Schema changes are migrations in
server/migrations/, generated from these models with peewee's runner:
`python -m playhouse.migrations DATABASE_URL generate -d server/migrations NAME server.models`.
"""

from __future__ import annotations

import peewee

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class OrganisationRow(BaseModel):
    id = peewee.AutoField()
    trkref = peewee.CharField(max_length=32, unique=True)
    name = peewee.CharField(max_length=200)
    locale = peewee.CharField(max_length=35)

    class Meta:
        table_name = "organisation"


class ConversationRow(BaseModel):
    id = peewee.AutoField()
    # Not indexed alone: the (organisation, sku) index serves lookups by organisation.
    organisation = peewee.ForeignKeyField(OrganisationRow, backref="conversations", index=False)
    sku = peewee.CharField(max_length=100)
    first_name = peewee.CharField(max_length=100)
    question = peewee.TextField()
    locale = peewee.CharField(max_length=35)
    created_at = peewee.DateTimeField()
    helpful = peewee.IntegerField(default=0)
    unhelpful = peewee.IntegerField(default=0)
    embeddable = peewee.BooleanField(default=False)
    retailer_locale = peewee.CharField(max_length=35)
    # Idempotent creates: the API key that created it, the request_id it
    # chose, and a digest of the request, to tell a retry from a reuse.
    created_by = peewee.CharField(max_length=64, null=True)
    request_id = peewee.CharField(max_length=36, null=True)
    request_digest = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "conversation"
        indexes = (
            (("organisation", "sku"), False),
            # NULLs are distinct: only creates with a request_id are constrained.
            (("created_by", "request_id"), True),
        )


class AnswerRow(BaseModel):
    id = peewee.AutoField()
    conversation = peewee.ForeignKeyField(ConversationRow, backref="answers")
    response = peewee.TextField()
    created_at = peewee.DateTimeField()
    first_name = peewee.CharField(max_length=100)
    town = peewee.CharField(max_length=100, default="")
    job_title = peewee.CharField(max_length=100, null=True)
    reviewer_segment = peewee.CharField(max_length=100, default="")
    helpful = peewee.IntegerField(default=0)
    unhelpful = peewee.IntegerField(default=0)
    review_url = peewee.CharField(max_length=2048, default="")
    review_locale = peewee.CharField(max_length=35, default="")
    reviewer_facebook_url = peewee.CharField(max_length=2048, null=True)
    response_type = peewee.CharField(max_length=20, default="owner")
    retailer_name = peewee.CharField(max_length=200, null=True)
    retailer_image_url = peewee.CharField(max_length=2048, null=True)

    class Meta:
        table_name = "answer"


class ApiKeyRow(BaseModel):
    id = peewee.AutoField()
    key_id = peewee.CharField(max_length=64, unique=True)
    # scrypt$N$r$p$salt$hash; the secret itself is never stored.
    secret_hash = peewee.CharField(max_length=255)
    created_at = peewee.DateTimeField()
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_key"


class ApiKeyOrganisationRow(BaseModel):
    id = peewee.AutoField()
    api_key = peewee.ForeignKeyField(ApiKeyRow, on_delete="CASCADE")
    organisation = peewee.ForeignKeyField(OrganisationRow, on_delete="CASCADE")

    class Meta:
        table_name = "api_key_organisation"
        indexes = ((("api_key", "organisation"), True),)
