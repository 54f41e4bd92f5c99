"""Reading conversations back: ordered indexes per product, exact counts kept as rows are written.

Every List page is a range of one index (organisation, sku[, locale], order key, id),
so a page deep in a product of a million conversations costs what the first does.
conversation_count holds, per organisation, sku and locale, how many conversations
and answers there are, updated in the transaction that writes them: a List
summary reads a few rows instead of counting the product's conversations.
service_secret holds the key that signs page tokens, shared by every replica.
Code that predates this migration runs unchanged against the schema after it.
"""

import secrets

from peewee import *

_ORDER_INDEXES = {
    "conversation_product_created": ("organisation_id", "sku", "created_at", "id"),
    "conversation_product_helpful": ("organisation_id", "sku", "helpful", "created_at", "id"),
    "conversation_product_locale_created": (
        "organisation_id", "sku", "locale", "created_at", "id"
    ),
    "conversation_product_locale_helpful": (
        "organisation_id", "sku", "locale", "helpful", "created_at", "id"
    ),
}  # fmt: skip


def up(migrator, db):
    # A default in the schema too: code that predates this column inserts without it.
    answers_count = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    migrator.migrate(migrator.add_column("conversation", "answers_count", answers_count))
    for name, columns in _ORDER_INDEXES.items():
        migrator.migrate(migrator.add_index("conversation", columns, name=name))
    # A prefix of the indexes above.
    migrator.migrate(migrator.drop_index("conversation", "conversationrow_organisation_id_sku"))

    class OrganisationRow(Model):
        class Meta:
            database = db
            table_name = "organisation"

    class ConversationCountRow(Model):
        organisation = ForeignKeyField(OrganisationRow, index=False)
        sku = CharField(max_length=100)
        locale = CharField(max_length=35)
        question_count = IntegerField(default=0)
        answers_count = IntegerField(default=0)

        class Meta:
            database = db
            table_name = "conversation_count"
            indexes = ((("organisation", "sku", "locale"), True),)

    class ServiceSecretRow(Model):
        name = CharField(max_length=64, primary_key=True)
        value = CharField(max_length=128)

        class Meta:
            database = db
            table_name = "service_secret"

    db.create_tables([ConversationCountRow, ServiceSecretRow])
    # Locales in the case the service writes them from now on, so that filters match.
    for (locale,) in db.execute_sql("SELECT DISTINCT locale FROM conversation").fetchall():
        if _canonical(locale) != locale:
            db.execute_sql(
                "UPDATE conversation SET locale = %s WHERE locale = %s".replace("%s", db.param),
                (_canonical(locale), locale),
            )
    db.execute_sql(
        "INSERT INTO conversation_count"
        " (organisation_id, sku, locale, question_count, answers_count)"
        " SELECT c.organisation_id, c.sku, c.locale, COUNT(*),"
        " (SELECT COUNT(*) FROM answer a JOIN conversation d ON a.conversation_id = d.id"
        "  WHERE d.organisation_id = c.organisation_id AND d.sku = c.sku AND d.locale = c.locale)"
        " FROM conversation c GROUP BY c.organisation_id, c.sku, c.locale"
    )
    db.execute_sql(
        "UPDATE conversation SET answers_count ="
        " (SELECT COUNT(*) FROM answer WHERE answer.conversation_id = conversation.id)"
    )
    ServiceSecretRow.create(name="page_token", value=secrets.token_hex(32))


def _canonical(tag):
    """As server.service.validation.canonical_locale (a migration stands alone)."""
    parts, extension = [], False
    for i, part in enumerate(tag.split("-")):
        extension = extension or (i > 0 and len(part) == 1)
        if i == 0 or extension:
            parts.append(part.lower())
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())
        elif len(part) == 2 and part.isalpha():
            parts.append(part.upper())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def down(migrator, db):
    migrator.migrate(migrator.drop_table("service_secret"))
    migrator.migrate(migrator.drop_table("conversation_count"))
    migrator.migrate(
        migrator.add_index(
            "conversation", ("organisation_id", "sku"), name="conversationrow_organisation_id_sku"
        )
    )
    for name in _ORDER_INDEXES:
        migrator.migrate(migrator.drop_index("conversation", name))
    migrator.migrate(migrator.drop_column("conversation", "answers_count"))
