"""A revision per product: every write that changes what a List or a Detail of the
product shows (a create, an answer, a vote) adds to it, in its own transaction.

A replica keeps the List pages and Detail conversations it has read lately, each under
the revision and counts of its product as read before it; it serves one again only
while they are unchanged (docs/architecture.md). Code that predates this migration runs
against the schema after it but adds no revision: its creates and answers still change
the counts, while a vote it counts may not show in what replicas of this release keep
until the product's next write. Serve with --read-cache-mib 0 while both releases run.
"""

from peewee import *


def up(migrator, db):
    # A default in the schema too: code that predates this column inserts without it.
    revision = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    migrator.migrate(migrator.add_column("conversation_count", "revision", revision))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("conversation_count", "revision"))
