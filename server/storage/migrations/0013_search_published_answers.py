"""The search index holds the text of published answers only: a held or rejected answer's
words no longer make its conversation match a shopper's search.

Migration 0010's answer triggers are replaced by ones that add an answer's text when it is
inserted published, and rebuild its conversation's answers text (from its published answers)
when an answer's text, conversation or status changes, or it is deleted. The index is
rebuilt for every conversation with an answer that is not published."""

from peewee import *

_PUBLISHED_TEXT_SQLITE = (
    "coalesce((SELECT group_concat(response, ' ') FROM answer WHERE conversation_id = {c}"
    " {only}), '')"
)


def _sqlite(only):
    """0010's answer triggers (only = "") or this migration's (only published answers)."""
    published = "AND status = 'published'" if only else ""
    when = " WHEN new.status = 'published'" if only else ""
    events = ("UPDATE OF response, status", "DELETE") if only else ("UPDATE OF response", "DELETE")
    return [
        "DROP TRIGGER answer_search_insert",
        "DROP TRIGGER answer_search_update",
        "DROP TRIGGER answer_search_delete",
        f"CREATE TRIGGER answer_search_insert AFTER INSERT ON answer{when} BEGIN"
        " UPDATE conversation_search SET answers = answers || ' ' || new.response"
        " WHERE rowid = new.conversation_id; END",
        *(
            f"CREATE TRIGGER answer_search_{event.split()[0].lower()} AFTER {event} ON answer"
            " BEGIN UPDATE conversation_search SET answers = "
            + _PUBLISHED_TEXT_SQLITE.format(c="old.conversation_id", only=published)
            + " WHERE rowid = old.conversation_id; END"
            for event in events
        ),
        "UPDATE conversation_search SET answers = "
        + _PUBLISHED_TEXT_SQLITE.format(c="conversation_search.rowid", only=published)
        + " WHERE rowid IN (SELECT conversation_id FROM answer WHERE status <> 'published')",
    ]


def _postgres(only):
    published = " AND a.status = 'published'" if only else ""
    inserted = " AND NEW.status = 'published'" if only else ""
    status = ", status" if only else ""
    return [
        "CREATE OR REPLACE FUNCTION conversation_search_vector(conversation integer)"
        " RETURNS tsvector LANGUAGE sql STABLE AS"
        " $$ SELECT conversation_search_text(c.locale, c.question)"
        " || conversation_search_text(c.locale, (SELECT string_agg(a.response, ' ' ORDER BY a.id)"
        f" FROM answer a WHERE a.conversation_id = c.id{published}))"
        " || conversation_search_scope(c.organisation_id, c.sku)"
        " FROM conversation c WHERE c.id = conversation $$",
        "CREATE OR REPLACE FUNCTION answer_search_on_write() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN"
        "  IF TG_OP = 'INSERT' THEN"
        "   UPDATE conversation_search s SET vector = s.vector"
        "    || conversation_search_text(c.locale, NEW.response)"
        f"   FROM conversation c WHERE c.id = NEW.conversation_id AND s.conversation_id = c.id"
        f"{inserted};"
        "  ELSE"
        "   UPDATE conversation_search SET vector = conversation_search_vector(conversation_id)"
        "   WHERE conversation_id IN (OLD.conversation_id, NEW.conversation_id);"
        "  END IF;"
        "  RETURN NULL;"
        " END $$",
        "DROP TRIGGER answer_search ON answer",
        "CREATE TRIGGER answer_search AFTER INSERT OR UPDATE OF response, conversation_id"
        f"{status} OR DELETE ON answer FOR EACH ROW EXECUTE FUNCTION answer_search_on_write()",
        "UPDATE conversation_search SET vector = conversation_search_vector(conversation_id)"
        " WHERE conversation_id IN (SELECT conversation_id FROM answer"
        " WHERE status <> 'published')",
    ]


def _apply(db, only):
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in _postgres(only) if postgres else _sqlite(only):
        db.execute_sql(statement)


def up(migrator, db):
    _apply(db, only=True)


def down(migrator, db):
    _apply(db, only=False)
