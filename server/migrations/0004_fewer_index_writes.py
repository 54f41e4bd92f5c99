"""Fewer index writes per create.

The organisation_id index goes: the (organisation_id, sku) index serves the
same lookups. The unique (created_by, request_id) index keeps only the creates
that have a request_id: the others never conflict.
"""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.drop_index("conversation", "conversationrow_organisation_id"))
    migrator.migrate(migrator.drop_index("conversation", "conversation_created_by_request_id"))
    migrator.migrate(
        migrator.add_index(
            "conversation",
            ("created_by", "request_id"),
            unique=True,
            where=SQL('"request_id" IS NOT NULL'),
            name="conversation_request_id_per_key",
        )
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_index("conversation", "conversation_request_id_per_key"))
    migrator.migrate(migrator.add_index("conversation", ("created_by", "request_id"), unique=True))
    migrator.migrate(
        migrator.add_index(
            "conversation", ("organisation_id",), name="conversationrow_organisation_id"
        )
    )
