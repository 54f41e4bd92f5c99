"""Answers and votes: idempotent answer creates, answers read in order, one vote per voter.

An answer records the API key that created it, the request_id it chose and a
digest of the request, as conversations do; the pair is unique. Answers are
read by conversation, oldest first: one index range. `vote` holds the votes
that carried a voter_id, unique per target and voter, so a voter counts once.
Code that predates this migration runs unchanged against the schema after it.
"""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("answer", "created_by", CharField(max_length=64, null=True)),
        migrator.add_column("answer", "request_id", CharField(max_length=36, null=True)),
        migrator.add_column("answer", "request_digest", CharField(max_length=64, null=True)),
        migrator.add_index("answer", ("created_by", "request_id"), True, name="answer_request"),
        migrator.add_index(
            "answer", ("conversation_id", "created_at", "id"), name="answer_conversation_created"
        ),
        # A prefix of the index above.
        migrator.drop_index("answer", "answerrow_conversation_id"),
    )

    class VoteRow(Model):
        target = CharField(max_length=12)
        target_id = IntegerField()
        voter_id = CharField(max_length=100)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "vote"
            indexes = ((("target", "target_id", "voter_id"), True),)

    db.create_tables([VoteRow])


def down(migrator, db):
    migrator.migrate(
        migrator.drop_table("vote"),
        migrator.add_index("answer", ("conversation_id",), name="answerrow_conversation_id"),
        migrator.drop_index("answer", "answer_conversation_created"),
        migrator.drop_index("answer", "answer_request"),
        migrator.drop_column("answer", "request_digest"),
        migrator.drop_column("answer", "request_id"),
        migrator.drop_column("answer", "created_by"),
    )
