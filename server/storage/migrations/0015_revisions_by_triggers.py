"""The database keeps each product's revision: triggers on conversation, answer and
conversation_count add to it whenever a row a List, a Detail or a page of answers shows is
inserted, updated or deleted, however it is written (by the service, a migration or an
operator's SQL). A published conversation deleted is counted out of its product's and its
organisation's counts by the same trigger (the service rejects one before it erases it,
and so counts it out first). Creates still count their conversations themselves: the
release before this one does, and runs against this schema while replicas are upgraded.

On PostgreSQL every writer takes its locks in one order, so that concurrent writers never
deadlock: the rows it writes first (answers, then conversations, each by id), then its
products' rows in conversation_count by key (organisation id, then sku and locale in byte
order), then organisation_count's. The triggers here are statement triggers over
transition tables, each writing its products in key order once per statement; the
triggers of migration 0011 that move counts are rewritten to take conversation_count's row
before organisation_count's. On SQLite one writer holds the file at a time: row triggers
serve.
"""

from peewee import *

_KEY = "organisation_id, sku, locale"
# Key order in bytes: the order Python sorts the same texts in.
_KEY_ORDER = 'organisation_id, sku COLLATE "C", locale COLLATE "C"'
# Adds each row's counts to its product's, and one to its revision.
_COUNTED = (
    "INSERT INTO conversation_count (organisation_id, sku, locale, question_count,"
    " answers_count, answered_count, revision) {rows} ON CONFLICT (organisation_id, sku,"
    " locale) DO UPDATE SET question_count = conversation_count.question_count"
    " + excluded.question_count, answers_count = conversation_count.answers_count"
    " + excluded.answers_count, answered_count = conversation_count.answered_count"
    " + excluded.answered_count, revision = conversation_count.revision + 1"
)
# What a product's row holds beside its stamp (conversations, answers, revision).
_UNSTAMPED = "answered_count, organisation_id, sku, locale"
_STAMP_KEPT = (
    "{new}.question_count = {old}.question_count AND {new}.answers_count = {old}.answers_count"
    " AND {new}.revision = {old}.revision"
)
# A published conversation's counts, signed: {r} is the row, {s} 1 or -1.
_PUBLISHED = "(CASE WHEN {r}.status = 'published' THEN {s} ELSE 0 END)"
_ANSWERED = "(CASE WHEN {r}.answers_count > 0 THEN 1 ELSE 0 END)"


def _sqlite_counts(row, sign):
    published = _PUBLISHED.format(r=row, s=sign)
    return (
        f"SELECT {row}.organisation_id, {row}.sku, {row}.locale, {published},"
        f" {published} * {row}.answers_count, {published} * {_ANSWERED.format(r=row)}, 1"
        " WHERE true"
    )


def _sqlite_bump(row, where="true"):
    return _COUNTED.format(
        rows=f"SELECT {row}.organisation_id, {row}.sku, {row}.locale, 0, 0, 0, 1 WHERE {where}"
    )


def _sqlite_answer_bump(ids):
    return _COUNTED.format(rows=f"SELECT {_KEY}, 0, 0, 0, 1 FROM conversation WHERE id IN ({ids})")


_SQLITE_UNCOUNTED_ORGANISATION = (
    "UPDATE organisation_count SET question_count = question_count - 1,"
    " answers_count = answers_count - old.answers_count,"
    f" answered_count = answered_count - {_ANSWERED.format(r='old')}"
    " WHERE organisation_id = old.organisation_id"
)
_SQLITE = [
    "CREATE TRIGGER conversation_added AFTER INSERT ON conversation BEGIN "
    + _sqlite_bump("new")
    + "; END",
    "CREATE TRIGGER conversation_changed AFTER UPDATE ON conversation BEGIN "
    + _sqlite_bump("old")
    + "; "
    + _sqlite_bump(
        "new",
        "new.organisation_id <> old.organisation_id OR new.sku <> old.sku"
        " OR new.locale <> old.locale",
    )
    + "; END",
    "CREATE TRIGGER conversation_removed AFTER DELETE ON conversation BEGIN "
    + _COUNTED.format(rows=_sqlite_counts("old", -1))
    + "; "
    + _SQLITE_UNCOUNTED_ORGANISATION
    + " AND old.status = 'published'; END",
    "CREATE TRIGGER answer_added AFTER INSERT ON answer BEGIN "
    + _sqlite_answer_bump("new.conversation_id")
    + "; END",
    "CREATE TRIGGER answer_changed AFTER UPDATE ON answer BEGIN "
    + _sqlite_answer_bump("old.conversation_id, new.conversation_id")
    + "; END",
    "CREATE TRIGGER answer_removed AFTER DELETE ON answer BEGIN "
    + _sqlite_answer_bump("old.conversation_id")
    + "; END",
    # An update of what a stamp leaves out (answered_count, a key) that leaves the stamp as
    # it was moves the revision.
    f"CREATE TRIGGER conversation_count_revised AFTER UPDATE OF {_UNSTAMPED}"
    f" ON conversation_count WHEN {_STAMP_KEPT.format(new='new', old='old')} BEGIN"
    " UPDATE conversation_count SET revision = revision + 1 WHERE id = new.id; END",
]
_SQLITE_DROPPED = [
    "conversation_added", "conversation_changed", "conversation_removed",
    "answer_added", "answer_changed", "answer_removed", "conversation_count_revised",
]  # fmt: skip


def _postgres_counts(table, sign):
    published = _PUBLISHED.format(r=table, s=sign)
    return (
        f"SELECT {_KEY}, SUM({published}), SUM({published} * answers_count),"
        f" SUM({published} * {_ANSWERED.format(r=table)}), 1 FROM {table}"
        f" GROUP BY {_KEY} ORDER BY {_KEY_ORDER}"
    )


def _postgres_bump(products):
    """One to the revision of each product `products` (a query of keys) names, in key order."""
    return _COUNTED.format(
        rows=f"SELECT {_KEY}, 0, 0, 0, 1 FROM ({products}) AS products"
        f" GROUP BY {_KEY} ORDER BY {_KEY_ORDER}"
    )


def _answers_products(*tables):
    ids = " UNION ".join(f"SELECT conversation_id FROM {t}" for t in tables)
    return f"SELECT {_KEY} FROM conversation WHERE id IN ({ids})"


_POSTGRES_UNCOUNTED_ORGANISATIONS = (
    "UPDATE organisation_count o SET question_count = o.question_count - r.questions,"
    " answers_count = o.answers_count - r.answers, answered_count = o.answered_count - r.answered"
    " FROM (SELECT organisation_id, COUNT(*) AS questions, SUM(answers_count) AS answers,"
    f" SUM({_ANSWERED.format(r='removed')}) AS answered FROM removed"
    " WHERE status = 'published' GROUP BY organisation_id) r"
    " WHERE o.organisation_id = r.organisation_id"
)


def _function(name, body):
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        + "; ".join(body)
        + "; RETURN NULL; END $$"
    )


def _statement_trigger(name, event, table, transitions):
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transitions}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
    )


# Migration 0011's count triggers, taking conversation_count's row first.
_ANSWERED_DELTA = f"{_ANSWERED.format(r='NEW')} - {_ANSWERED.format(r='OLD')}"
_SIGN = "(CASE WHEN NEW.status = 'published' THEN 1 ELSE -1 END)"
_PRODUCT = " WHERE organisation_id = NEW.organisation_id AND sku = NEW.sku AND locale = NEW.locale"
_RECOUNTED = [
    "UPDATE conversation_count SET"
    " answers_count = answers_count + NEW.answers_count - OLD.answers_count,"
    f" answered_count = answered_count + {_ANSWERED_DELTA}" + _PRODUCT,
    "UPDATE organisation_count SET"
    " answers_count = answers_count + NEW.answers_count - OLD.answers_count,"
    f" answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = NEW.organisation_id",
]
_ORGANISATION_ADDED = (
    "INSERT INTO organisation_count (organisation_id, question_count, answers_count,"
    " answered_count) SELECT NEW.organisation_id, {s}, {s} * NEW.answers_count,"
    " {s} * " + _ANSWERED.format(r="NEW") + " WHERE true ON CONFLICT (organisation_id) DO UPDATE"
    " SET question_count = organisation_count.question_count + excluded.question_count,"
    " answers_count = organisation_count.answers_count + excluded.answers_count,"
    " answered_count = organisation_count.answered_count + excluded.answered_count"
)
_MOVED = [
    f"UPDATE conversation_count SET question_count = question_count + {_SIGN},"
    f" answers_count = answers_count + {_SIGN} * NEW.answers_count,"
    f" answered_count = answered_count + {_SIGN} * {_ANSWERED.format(r='NEW')},"
    " revision = revision + 1" + _PRODUCT,
    _ORGANISATION_ADDED.format(s=_SIGN),
]


def _postgres(first):
    """This migration's triggers; 0011's count functions with their statements in the order
    `first` says ("product" first, or "organisation" first as 0011 wrote them)."""
    order = (lambda body: body) if first == "product" else (lambda body: body[::-1])
    return [
        _function("conversation_recounted", order(_RECOUNTED)),
        _function("conversation_moved", order(_MOVED)),
    ]


_POSTGRES = [
    *_postgres("product"),
    _function("conversation_added", [_postgres_bump(f"SELECT {_KEY} FROM added")]),
    # Fires before 0010's conversation_counted (triggers fire in the order of their names).
    _statement_trigger("conversation_added", "INSERT", "conversation", "NEW TABLE AS added"),
    _function(
        "conversation_changed",
        [_postgres_bump(f"SELECT {_KEY} FROM old_rows UNION ALL SELECT {_KEY} FROM new_rows")],
    ),
    _statement_trigger(
        "conversation_changed",
        "UPDATE",
        "conversation",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    _function(
        "conversation_removed",
        [_COUNTED.format(rows=_postgres_counts("removed", -1)), _POSTGRES_UNCOUNTED_ORGANISATIONS],
    ),
    _statement_trigger("conversation_removed", "DELETE", "conversation", "OLD TABLE AS removed"),
    _function("answer_added", [_postgres_bump(_answers_products("added"))]),
    _statement_trigger("answer_added", "INSERT", "answer", "NEW TABLE AS added"),
    _function("answer_changed", [_postgres_bump(_answers_products("old_rows", "new_rows"))]),
    _statement_trigger(
        "answer_changed", "UPDATE", "answer", "OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    _function("answer_removed", [_postgres_bump(_answers_products("removed"))]),
    _statement_trigger("answer_removed", "DELETE", "answer", "OLD TABLE AS removed"),
    # As on SQLite: an update of what a stamp leaves out moves the revision.
    "CREATE FUNCTION conversation_count_revised() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN NEW.revision := OLD.revision + 1; RETURN NEW; END $$",
    f"CREATE TRIGGER conversation_count_revised BEFORE UPDATE OF {_UNSTAMPED}"
    f" ON conversation_count FOR EACH ROW WHEN ({_STAMP_KEPT.format(new='NEW', old='OLD')})"
    " EXECUTE FUNCTION conversation_count_revised()",
]
_POSTGRES_DROPPED = [
    ("conversation_added", "conversation"), ("conversation_changed", "conversation"),
    ("conversation_removed", "conversation"), ("answer_added", "answer"),
    ("answer_changed", "answer"), ("answer_removed", "answer"),
    ("conversation_count_revised", "conversation_count"),
]  # fmt: skip


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in _POSTGRES if postgres else _SQLITE:
        db.execute_sql(statement)


def down(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        for name, table in _POSTGRES_DROPPED:
            db.execute_sql(f"DROP TRIGGER {name} ON {table}")
            db.execute_sql(f"DROP FUNCTION {name}()")
        for statement in _postgres("organisation"):
            db.execute_sql(statement)
    else:
        for name in _SQLITE_DROPPED:
            db.execute_sql(f"DROP TRIGGER {name}")
