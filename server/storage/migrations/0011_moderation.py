"""Moderation: a status on every conversation and answer (`published`, `pending` or
`rejected`) with the reasons it is held, a policy per organisation, a role per API key,
each organisation's blocked terms, and the log of moderators' decisions.

Existing rows become published, existing organisations post-moderated (their creates
publish at once, as before), existing keys shoppers. The counts (conversation_count,
organisation_count, conversation.answers_count) count published items only:
organisation_count's triggers of migration 0010 are replaced by ones that count a
published conversation alone, and a trigger counts a conversation in or out of its
product's and organisation's counts when its status crosses `published`, taking
organisation_count's row before conversation_count's as every writer does. The trigger
that follows a published conversation's answers_count now keeps its product's
answers_count too (the code did before): it sees the row's status as the update writes it,
so an answer counted while its conversation changes status is counted where it belongs.
"""

from peewee import *

_ADDED = (
    "INSERT INTO organisation_count (organisation_id, question_count, answers_count,"
    " answered_count) {rows} ON CONFLICT (organisation_id) DO UPDATE SET"
    " question_count = organisation_count.question_count + excluded.question_count,"
    " answers_count = organisation_count.answers_count + excluded.answers_count,"
    " answered_count = organisation_count.answered_count + excluded.answered_count"
)
_ANSWERED_DELTA = (
    "(CASE WHEN {new}.answers_count > 0 THEN 1 ELSE 0 END)"
    " - (CASE WHEN {old}.answers_count > 0 THEN 1 ELSE 0 END)"
)
# What migration 0010 counted a published conversation's answers with; `down` restores it.
_RECOUNTED_BEFORE = [
    "UPDATE organisation_count SET"
    " answers_count = answers_count + {new}.answers_count - {old}.answers_count,"
    f" answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = {new}.organisation_id",
    f"UPDATE conversation_count SET answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = {new}.organisation_id AND sku = {new}.sku"
    " AND locale = {new}.locale",
]
_RECOUNTED = [
    "UPDATE organisation_count SET"
    " answers_count = answers_count + {new}.answers_count - {old}.answers_count,"
    f" answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = {new}.organisation_id",
    "UPDATE conversation_count SET"
    " answers_count = answers_count + {new}.answers_count - {old}.answers_count,"
    f" answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = {new}.organisation_id AND sku = {new}.sku"
    " AND locale = {new}.locale",
]
# +1 when a conversation becomes published, -1 when it stops being so.
_SIGN = "(CASE WHEN {new}.status = 'published' THEN 1 ELSE -1 END)"
_MOVED = [
    _ADDED.format(
        rows=f"SELECT {{new}}.organisation_id, {_SIGN}, {_SIGN} * {{new}}.answers_count,"
        f" {_SIGN} * (CASE WHEN {{new}}.answers_count > 0 THEN 1 ELSE 0 END) WHERE true"
    ),
    f"UPDATE conversation_count SET question_count = question_count + {_SIGN},"
    f" answers_count = answers_count + {_SIGN} * {{new}}.answers_count,"
    f" answered_count = answered_count"
    f" + {_SIGN} * (CASE WHEN {{new}}.answers_count > 0 THEN 1 ELSE 0 END),"
    " revision = revision + 1"
    " WHERE organisation_id = {new}.organisation_id AND sku = {new}.sku"
    " AND locale = {new}.locale",
]
_CROSSES = "({old}.status = 'published') <> ({new}.status = 'published')"
_PUBLISHED = "{new}.status = 'published'"

_SQLITE = [
    "DROP TRIGGER conversation_counted",
    "DROP TRIGGER conversation_recounted",
    f"CREATE TRIGGER conversation_counted AFTER INSERT ON conversation"
    f" WHEN {_PUBLISHED.format(new='new')} BEGIN "
    + _ADDED.format(
        rows="SELECT new.organisation_id, 1, new.answers_count,"
        " CASE WHEN new.answers_count > 0 THEN 1 ELSE 0 END WHERE true"
    )
    + "; END",
    "CREATE TRIGGER conversation_recounted AFTER UPDATE OF answers_count ON conversation"
    f" WHEN {_PUBLISHED.format(new='new')} AND {_PUBLISHED.format(new='old')}"
    " BEGIN " + "; ".join(u.format(new="new", old="old") for u in _RECOUNTED) + "; END",
    "CREATE TRIGGER conversation_moved AFTER UPDATE OF status ON conversation"
    f" WHEN {_CROSSES.format(new='new', old='old')}"
    " BEGIN " + "; ".join(u.format(new="new", old="old") for u in _MOVED) + "; END",
]
_POSTGRES = [
    "CREATE OR REPLACE FUNCTION conversation_counted() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN "
    + _ADDED.format(
        rows="SELECT organisation_id, COUNT(*), SUM(answers_count),"
        " SUM(CASE WHEN answers_count > 0 THEN 1 ELSE 0 END) FROM added"
        " WHERE status = 'published' GROUP BY organisation_id ORDER BY organisation_id"
    )
    + "; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION conversation_recounted() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN "
    + "; ".join(u.format(new="NEW", old="OLD") for u in _RECOUNTED)
    + "; RETURN NULL; END $$",
    "DROP TRIGGER conversation_recounted ON conversation",
    "CREATE TRIGGER conversation_recounted AFTER UPDATE OF answers_count ON conversation"
    " FOR EACH ROW WHEN (OLD.answers_count IS DISTINCT FROM NEW.answers_count"
    " AND OLD.status = 'published' AND NEW.status = 'published')"
    " EXECUTE FUNCTION conversation_recounted()",
    "CREATE FUNCTION conversation_moved() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + "; ".join(u.format(new="NEW", old="OLD") for u in _MOVED)
    + "; RETURN NULL; END $$",
    "CREATE TRIGGER conversation_moved AFTER UPDATE OF status ON conversation"
    f" FOR EACH ROW WHEN ({_CROSSES.format(new='NEW', old='OLD')})"
    " EXECUTE FUNCTION conversation_moved()",
]


_SQLITE_BEFORE = [
    "DROP TRIGGER conversation_moved",
    "DROP TRIGGER conversation_counted",
    "DROP TRIGGER conversation_recounted",
    "CREATE TRIGGER conversation_counted AFTER INSERT ON conversation BEGIN "
    + _ADDED.format(
        rows="SELECT new.organisation_id, 1, new.answers_count,"
        " CASE WHEN new.answers_count > 0 THEN 1 ELSE 0 END WHERE true"
    )
    + "; END",
    "CREATE TRIGGER conversation_recounted AFTER UPDATE OF answers_count ON conversation"
    " BEGIN " + "; ".join(u.format(new="new", old="old") for u in _RECOUNTED_BEFORE) + "; END",
]
_POSTGRES_BEFORE = [
    "DROP TRIGGER conversation_moved ON conversation",
    "DROP FUNCTION conversation_moved()",
    "CREATE OR REPLACE FUNCTION conversation_counted() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN "
    + _ADDED.format(
        rows="SELECT organisation_id, COUNT(*), SUM(answers_count),"
        " SUM(CASE WHEN answers_count > 0 THEN 1 ELSE 0 END) FROM added"
        " GROUP BY organisation_id ORDER BY organisation_id"
    )
    + "; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION conversation_recounted() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN "
    + "; ".join(u.format(new="NEW", old="OLD") for u in _RECOUNTED_BEFORE)
    + "; RETURN NULL; END $$",
    "DROP TRIGGER conversation_recounted ON conversation",
    "CREATE TRIGGER conversation_recounted AFTER UPDATE OF answers_count ON conversation"
    " FOR EACH ROW WHEN (OLD.answers_count IS DISTINCT FROM NEW.answers_count)"
    " EXECUTE FUNCTION conversation_recounted()",
]


def _status():
    return CharField(max_length=10, default="published", constraints=[SQL("DEFAULT 'published'")])


def _held_for():
    return CharField(max_length=200, default="", constraints=[SQL("DEFAULT ''")])


def up(migrator, db):
    policy = CharField(max_length=4, default="post", constraints=[SQL("DEFAULT 'post'")])
    role = CharField(max_length=10, default="shopper", constraints=[SQL("DEFAULT 'shopper'")])
    revision = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    migrator.migrate(
        migrator.add_column("conversation", "status", _status(), allow_not_null=True),
        migrator.add_column("conversation", "held_for", _held_for(), allow_not_null=True),
        migrator.add_column("answer", "status", _status(), allow_not_null=True),
        migrator.add_column("answer", "held_for", _held_for(), allow_not_null=True),
        migrator.add_column("organisation", "moderation", policy, allow_not_null=True),
        migrator.add_column("organisation", "terms_revision", revision, allow_not_null=True),
        migrator.add_column("api_key", "role", role, allow_not_null=True),
    )
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in _POSTGRES if postgres else _SQLITE:
        db.execute_sql(statement)

    class BlockedTermRow(Model):
        organisation_id = IntegerField(constraints=[SQL("REFERENCES organisation (id)")])
        term = CharField(max_length=200)

        class Meta:
            database = db
            table_name = "blocked_term"
            indexes = ((("organisation_id", "term"), True),)

    class ModerationDecisionRow(Model):
        organisation_id = IntegerField(constraints=[SQL("REFERENCES organisation (id)")])
        target = CharField(max_length=12)
        target_id = IntegerField()
        decided_by = CharField(max_length=64)
        decided_at = DateTimeField()
        from_status = CharField(max_length=10)
        to_status = CharField(max_length=10)
        reason = CharField(max_length=100)
        note = TextField()

        class Meta:
            database = db
            table_name = "moderation_decision"
            indexes = ((("organisation_id", "id"), False),)

    db.create_tables([BlockedTermRow, ModerationDecisionRow])
    # The queue: an organisation's pending items, oldest first.
    db.execute_sql(
        "CREATE INDEX conversation_pending ON conversation (organisation_id, created_at, id)"
        " WHERE status = 'pending'"
    )
    db.execute_sql(
        "CREATE INDEX answer_pending ON answer (created_at, id) WHERE status = 'pending'"
    )


def down(migrator, db):
    db.execute_sql("DROP INDEX answer_pending")
    db.execute_sql("DROP INDEX conversation_pending")
    db.execute_sql("DROP TABLE moderation_decision")
    db.execute_sql("DROP TABLE blocked_term")
    # The code before this migration shows every row: pending and rejected ones are
    # published first, and counted so by this migration's triggers, before 0010's return.
    db.execute_sql("UPDATE conversation SET status = 'published' WHERE status <> 'published'")
    db.execute_sql("UPDATE answer SET status = 'published' WHERE status <> 'published'")
    db.execute_sql(
        "UPDATE conversation SET answers_count = (SELECT COUNT(*) FROM answer"
        " WHERE answer.conversation_id = conversation.id) WHERE answers_count <>"
        " (SELECT COUNT(*) FROM answer WHERE answer.conversation_id = conversation.id)"
    )
    for statement in _POSTGRES_BEFORE if isinstance(db, PostgresqlDatabase) else _SQLITE_BEFORE:
        db.execute_sql(statement)
    migrator.migrate(
        migrator.drop_column("api_key", "role"),
        migrator.drop_column("organisation", "terms_revision"),
        migrator.drop_column("organisation", "moderation"),
        migrator.drop_column("answer", "held_for"),
        migrator.drop_column("answer", "status"),
        migrator.drop_column("conversation", "held_for"),
        migrator.drop_column("conversation", "status"),
    )
