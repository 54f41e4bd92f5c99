"""The peewee models: one row class per table, bound late to `database`.

Counters are BIGINT (migration 0009): a count may pass 2**31 - 1 on PostgreSQL too.

Bound through a DatabaseProxy, so that one set of models serves SQLite (the
embedded default) and PostgreSQL (production). Schema changes are migrations in
server/storage/migrations/, generated from these models with peewee's runner:
`python -m playhouse.migrations DATABASE_URL generate -d server/storage/migrations NAME
server.storage.models`.
"""

from __future__ import annotations

import datetime

import peewee

database = peewee.DatabaseProxy()
# The row an upsert would have inserted (`excluded` in SQL).
EXCLUDED = peewee.EXCLUDED


def _default(value: str) -> peewee.SQL:
    """A text column's DEFAULT in the schema, for rows written by code that predates it."""
    return peewee.SQL(f"DEFAULT '{value}'")


def _status() -> peewee.CharField:
    """An item's moderation status: "published", "pending" or "rejected" (migration 0011)."""
    return peewee.CharField(max_length=10, default="published", constraints=[_default("published")])


def _held_for() -> peewee.CharField:
    """Why an item is held, the reasons joined by commas; "" when it is not."""
    return peewee.CharField(max_length=200, default="", constraints=[_default("")])


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class OrganisationRow(BaseModel):
    id = peewee.AutoField()
    trkref = peewee.CharField(max_length=32, unique=True)
    name = peewee.CharField(max_length=200)
    locale = peewee.CharField(max_length=35)
    # "pre" or "post" moderation (migration 0011); the schema's default is the older rows'.
    moderation = peewee.CharField(max_length=4, default="post", constraints=[_default("post")])
    # Added to whenever the organisation's blocked terms change: replicas re-read them then.
    terms_revision = peewee.BigIntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])
    # How many reporters send a published item back to the queue (migration 0012).
    report_threshold = peewee.IntegerField(default=3, constraints=[peewee.SQL("DEFAULT 3")])

    class Meta:
        table_name = "organisation"


class ConversationRow(BaseModel):
    id = peewee.AutoField()
    # Not indexed alone: the indexes by product below serve lookups by organisation.
    organisation = peewee.ForeignKeyField(OrganisationRow, backref="conversations", index=False)
    sku = peewee.CharField(max_length=100)
    first_name = peewee.CharField(max_length=100)
    question = peewee.TextField()
    locale = peewee.CharField(max_length=35)
    created_at = peewee.DateTimeField()
    helpful = peewee.BigIntegerField(default=0)
    unhelpful = peewee.BigIntegerField(default=0)
    embeddable = peewee.BooleanField(default=False)
    retailer_locale = peewee.CharField(max_length=35)
    # Idempotent creates: the API key that created it, the request_id it
    # chose, and a digest of the request, to tell a retry from a reuse.
    created_by = peewee.CharField(max_length=64, null=True)
    request_id = peewee.CharField(max_length=36, null=True)
    request_digest = peewee.CharField(max_length=64, null=True)
    # DEFAULT 0 in the schema: creates do not write it.
    answers_count = peewee.BigIntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])
    status = _status()
    held_for = _held_for()

    class Meta:
        table_name = "conversation"
        # The List orders, each a range of one index (migration 0005 names them).
        indexes = (
            (("organisation", "sku", "created_at", "id"), False),
            (("organisation", "sku", "helpful", "created_at", "id"), False),
            (("organisation", "sku", "locale", "created_at", "id"), False),
            (("organisation", "sku", "locale", "helpful", "created_at", "id"), False),
            (("organisation", "sku", "answers_count", "created_at", "id"), False),
            # The organisation-wide List's orders (migration 0010).
            (("organisation", "created_at", "id"), False),
            (("organisation", "helpful", "created_at", "id"), False),
            (("organisation", "answers_count", "created_at", "id"), False),
            # NULLs are distinct: only creates with a request_id are constrained.
            (("created_by", "request_id"), True),
        )


class AnswerRow(BaseModel):
    id = peewee.AutoField()
    # Indexed with created_at and id below: a conversation's answers, oldest first.
    conversation = peewee.ForeignKeyField(ConversationRow, backref="answers", index=False)
    response = peewee.TextField()
    created_at = peewee.DateTimeField()
    first_name = peewee.CharField(max_length=100)
    town = peewee.CharField(max_length=100, default="")
    job_title = peewee.CharField(max_length=100, null=True)
    reviewer_segment = peewee.CharField(max_length=100, default="")
    helpful = peewee.BigIntegerField(default=0)
    unhelpful = peewee.BigIntegerField(default=0)
    review_url = peewee.CharField(max_length=2048, default="")
    review_locale = peewee.CharField(max_length=35, default="")
    reviewer_facebook_url = peewee.CharField(max_length=2048, null=True)
    response_type = peewee.CharField(max_length=20, default="owner")
    retailer_name = peewee.CharField(max_length=200, null=True)
    retailer_image_url = peewee.CharField(max_length=2048, null=True)
    # Idempotent creates, as on conversations.
    created_by = peewee.CharField(max_length=64, null=True)
    request_id = peewee.CharField(max_length=36, null=True)
    request_digest = peewee.CharField(max_length=64, null=True)
    status = _status()
    held_for = _held_for()

    class Meta:
        table_name = "answer"
        indexes = (
            (("conversation", "created_at", "id"), False),
            (("created_by", "request_id"), True),
        )


class VoteRow(BaseModel):
    """A vote that carried a voter_id: the voter counts once per target (a conversation or
    an answer). Votes without one are only counted."""

    id = peewee.AutoField()
    target = peewee.CharField(max_length=12)  # "conversation" or "answer"
    target_id = peewee.IntegerField()
    voter_id = peewee.CharField(max_length=100)
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "vote"
        indexes = ((("target", "target_id", "voter_id"), True),)


class ReportRow(BaseModel):
    """A shopper's report of a conversation or an answer; one per reporter_id and target,
    and each one without a reporter_id counts alone."""

    id = peewee.AutoField()
    target = peewee.CharField(max_length=12)  # "conversation" or "answer"
    target_id = peewee.IntegerField()
    reason = peewee.CharField(max_length=24)  # one of REPORT_REASONS
    reporter_id = peewee.CharField(max_length=100, null=True)
    reported_by = peewee.CharField(max_length=64)  # the API key that sent it
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "report"
        indexes = ((("target", "target_id", "reporter_id"), True),)


class ConversationCountRow(BaseModel):
    """How many conversations and answers a product has in one locale, kept exact by the
    transactions that write them, so that a List summary never counts rows; and its
    revision, which the database's triggers add to on every change to a row a read of the
    product shows (migration 0015)."""

    id = peewee.AutoField()
    organisation = peewee.ForeignKeyField(OrganisationRow, index=False)
    sku = peewee.CharField(max_length=100)
    locale = peewee.CharField(max_length=35)
    question_count = peewee.BigIntegerField(default=0)
    answers_count = peewee.BigIntegerField(default=0)
    revision = peewee.BigIntegerField(default=0)
    # The conversations with at least one answer; kept by a trigger (migration 0010).
    answered_count = peewee.BigIntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])

    class Meta:
        table_name = "conversation_count"
        indexes = ((("organisation", "sku", "locale"), True),)


class OrganisationCountRow(BaseModel):
    """What conversation_count holds, for a whole organisation: kept by triggers on
    conversation (migration 0010), so that an organisation-wide summary reads one row."""

    organisation = peewee.ForeignKeyField(OrganisationRow, primary_key=True)
    question_count = peewee.BigIntegerField(default=0)
    answers_count = peewee.BigIntegerField(default=0)
    answered_count = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "organisation_count"


class ServiceSecretRow(BaseModel):
    """Secrets every replica shares, made by the migrations: the key that signs page tokens,
    the key API secrets are digested with."""

    name = peewee.CharField(max_length=64, primary_key=True)
    value = peewee.CharField(max_length=128)

    class Meta:
        table_name = "service_secret"


class ApiKeyRow(BaseModel):
    id = peewee.AutoField()
    key_id = peewee.CharField(max_length=64, unique=True)
    # hmac-sha256$HEX, or a legacy scrypt$N$r$p$salt$hash; never the secret itself.
    secret_hash = peewee.CharField(max_length=255)
    created_at = peewee.DateTimeField()
    revoked_at = peewee.DateTimeField(null=True)
    # "shopper" or "moderator" (migration 0011).
    role = peewee.CharField(max_length=10, default="shopper", constraints=[_default("shopper")])

    class Meta:
        table_name = "api_key"


class ApiKeyOrganisationRow(BaseModel):
    id = peewee.AutoField()
    api_key = peewee.ForeignKeyField(ApiKeyRow, on_delete="CASCADE")
    organisation = peewee.ForeignKeyField(OrganisationRow, on_delete="CASCADE")

    class Meta:
        table_name = "api_key_organisation"
        indexes = ((("api_key", "organisation"), True),)


class BlockedTermRow(BaseModel):
    """A term an organisation blocks: text holding it is held for a moderator."""

    id = peewee.AutoField()
    organisation = peewee.ForeignKeyField(OrganisationRow, index=False)
    term = peewee.CharField(max_length=200)

    class Meta:
        table_name = "blocked_term"
        indexes = ((("organisation", "term"), True),)


class ModerationDecisionRow(BaseModel):
    """A moderator's decision on a conversation or an answer: who, when, from which status
    to which, why."""

    id = peewee.AutoField()
    organisation = peewee.ForeignKeyField(OrganisationRow, index=False)
    target = peewee.CharField(max_length=12)  # "conversation" or "answer"
    target_id = peewee.IntegerField()
    decided_by = peewee.CharField(max_length=64)
    decided_at = peewee.DateTimeField()
    from_status = peewee.CharField(max_length=10)
    to_status = peewee.CharField(max_length=10)
    reason = peewee.CharField(max_length=100)
    note = peewee.TextField()

    class Meta:
        table_name = "moderation_decision"
        indexes = ((("organisation", "id"), False),)


def naive_utc(value: datetime.datetime) -> datetime.datetime:
    """A stored timestamp: UTC without a timezone, as both databases' columns hold it."""
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def utc(value: datetime.datetime) -> datetime.datetime:
    """A stored timestamp read back, as timezone-aware UTC."""
    return value.replace(tzinfo=datetime.UTC)


# The moderation queue: an organisation's pending items, oldest first (migration 0011).
ConversationRow.add_index(
    peewee.ModelIndex(
        ConversationRow,
        (ConversationRow.organisation, ConversationRow.created_at, ConversationRow.id),
        name="conversation_pending",
        where=ConversationRow.status == "pending",
    )
)
AnswerRow.add_index(
    peewee.ModelIndex(
        AnswerRow,
        (AnswerRow.created_at, AnswerRow.id),
        name="answer_pending",
        where=AnswerRow.status == "pending",
    )
)
