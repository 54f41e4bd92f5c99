"""Counters of 64 bits: votes and answers are counted in BIGINT columns on PostgreSQL, whose
INTEGER stops at 2**31 - 1 (the vote after it failed). SQLite's integers have 64 bits
already, so nothing changes there. The contract's counts are uint32: the service shows a
count beyond 2**32 - 1 as 2**32 - 1 (server/api/messages.py). Code that predates this
migration runs unchanged against the schema after it.
"""

from peewee import *

# Each table's counters.
COUNTERS = {
    "conversation": ("helpful", "unhelpful", "answers_count"),
    "answer": ("helpful", "unhelpful"),
    "conversation_count": ("question_count", "answers_count"),
}


def _alter(migrator, db, kind):
    if not isinstance(db, PostgresqlDatabase):
        return
    migrator.migrate(
        *(
            migrator.alter_column_type(table, column, kind())
            for table, columns in COUNTERS.items()
            for column in columns
        )
    )


def up(migrator, db):
    _alter(migrator, db, BigIntegerField)


def down(migrator, db):
    _alter(migrator, db, IntegerField)
