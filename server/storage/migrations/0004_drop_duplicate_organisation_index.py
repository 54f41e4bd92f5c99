"""One index fewer to write per create.

The organisation_id index duplicated the prefix of the (organisation_id, sku)
index, which serves the same lookups. Code that predates this migration runs
unchanged against the schema after it (replicas are upgraded one at a time).
"""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.drop_index("conversation", "conversationrow_organisation_id"))


def down(migrator, db):
    migrator.migrate(
        migrator.add_index(
            "conversation", ("organisation_id",), name="conversationrow_organisation_id"
        )
    )
