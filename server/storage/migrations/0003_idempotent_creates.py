"""Idempotent creates: who created a conversation, its request_id and request digest."""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("conversation", "created_by", CharField(null=True, max_length=64))
    )
    migrator.migrate(
        migrator.add_column("conversation", "request_id", CharField(null=True, max_length=36))
    )
    migrator.migrate(
        migrator.add_column("conversation", "request_digest", CharField(null=True, max_length=64))
    )
    migrator.migrate(migrator.add_index("conversation", ("created_by", "request_id"), unique=True))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("conversation", "conversation_created_by_request_id"))
    migrator.migrate(migrator.drop_column("conversation", "request_digest"))
    migrator.migrate(migrator.drop_column("conversation", "request_id"))
    migrator.migrate(migrator.drop_column("conversation", "created_by"))
