"""Full-text search over a conversation's question and answers, and the indexes of the
organisation-wide List and of its `answers_count desc` order.

conversation_search holds, per conversation, what a search matches; the database keeps
it in step through triggers on conversation and answer, so no write path has to. On
SQLite it is an FTS5 table (unicode61 tokens, diacritics removed); on PostgreSQL a
tsvector per conversation with a GIN index, built with the text search configuration
of the conversation's locale where PostgreSQL has one (`simple` otherwise), over the
text with its accents removed by the `unaccent` extension. The extension is trusted:
the database's owner may create it; this migration does, if it is not there.
"""

from peewee import *

_INDEXES = {
    "conversation_organisation_created": ("organisation_id", "created_at", "id"),
    "conversation_organisation_helpful": ("organisation_id", "helpful", "created_at", "id"),
    "conversation_organisation_answers": ("organisation_id", "answers_count", "created_at", "id"),
    "conversation_product_answers": (
        "organisation_id", "sku", "answers_count", "created_at", "id"
    ),
}  # fmt: skip
# The unanswered conversations of an organisation, oldest or newest first: a retailer's
# answering queue reads this range alone, however many conversations were answered.
_UNANSWERED = (
    "CREATE INDEX conversation_organisation_unanswered"
    " ON conversation (organisation_id, created_at, id) WHERE answers_count = 0"
)
# A locale's language subtag and the text search configuration PostgreSQL names for it;
# only those the server has are used.
_LANGUAGES = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "da": "danish",
    "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french", "de": "german",
    "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian",
    "nb": "norwegian", "nn": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil",
    "tr": "turkish", "yi": "yiddish",
}  # fmt: skip

_SQLITE = [
    "CREATE VIRTUAL TABLE conversation_search USING fts5("
    " question, answers, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER conversation_search_insert AFTER INSERT ON conversation BEGIN"
    " INSERT INTO conversation_search (rowid, question, answers) VALUES (new.id, new.question, '');"
    " END",
    "CREATE TRIGGER conversation_search_update AFTER UPDATE OF question ON conversation BEGIN"
    " UPDATE conversation_search SET question = new.question WHERE rowid = new.id; END",
    "CREATE TRIGGER conversation_search_delete AFTER DELETE ON conversation BEGIN"
    " DELETE FROM conversation_search WHERE rowid = old.id; END",
    "CREATE TRIGGER answer_search_insert AFTER INSERT ON answer BEGIN"
    " UPDATE conversation_search SET answers = answers || ' ' || new.response"
    " WHERE rowid = new.conversation_id; END",
    *(
        f"CREATE TRIGGER answer_search_{event.split()[0].lower()} AFTER {event} ON answer BEGIN"
        " UPDATE conversation_search SET answers = coalesce((SELECT group_concat(response, ' ')"
        " FROM answer WHERE conversation_id = old.conversation_id), '')"
        " WHERE rowid = old.conversation_id; END"
        for event in ("UPDATE OF response", "DELETE")
    ),
    "INSERT INTO conversation_search (rowid, question, answers)"
    " SELECT id, question, coalesce((SELECT group_concat(response, ' ') FROM answer"
    " WHERE conversation_id = conversation.id), '') FROM conversation",
]

_POSTGRES = [
    "CREATE TABLE conversation_search ("
    " conversation_id integer PRIMARY KEY REFERENCES conversation (id) ON DELETE CASCADE,"
    " vector tsvector NOT NULL)",
    "CREATE INDEX conversation_search_vector ON conversation_search USING gin (vector)",
    "CREATE FUNCTION conversation_search_text(locale text, body text) RETURNS tsvector"
    " LANGUAGE sql STABLE AS"
    " $$ SELECT to_tsvector(conversation_text_config(locale), unaccent(coalesce(body, ''))) $$",
    "CREATE FUNCTION conversation_search_vector(conversation integer) RETURNS tsvector"
    " LANGUAGE sql STABLE AS"
    " $$ SELECT conversation_search_text(c.locale, c.question)"
    " || conversation_search_text(c.locale, (SELECT string_agg(a.response, ' ' ORDER BY a.id)"
    " FROM answer a WHERE a.conversation_id = c.id)) FROM conversation c WHERE c.id = conversation"
    " $$",
    "CREATE FUNCTION conversation_search_on_write() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'INSERT' THEN"
    "   INSERT INTO conversation_search (conversation_id, vector)"
    "   VALUES (NEW.id, conversation_search_text(NEW.locale, NEW.question));"
    "  ELSE"
    "   UPDATE conversation_search SET vector = conversation_search_vector(NEW.id)"
    "   WHERE conversation_id = NEW.id;"
    "  END IF;"
    "  RETURN NULL;"
    " END $$",
    "CREATE TRIGGER conversation_search AFTER INSERT OR UPDATE OF question, locale"
    " ON conversation FOR EACH ROW EXECUTE FUNCTION conversation_search_on_write()",
    "CREATE FUNCTION answer_search_on_write() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'INSERT' THEN"
    "   UPDATE conversation_search s SET vector = s.vector"
    "    || conversation_search_text(c.locale, NEW.response)"
    "   FROM conversation c WHERE c.id = NEW.conversation_id AND s.conversation_id = c.id;"
    "  ELSE"
    "   UPDATE conversation_search SET vector = conversation_search_vector(conversation_id)"
    "   WHERE conversation_id IN (OLD.conversation_id, NEW.conversation_id);"
    "  END IF;"
    "  RETURN NULL;"
    " END $$",
    "CREATE TRIGGER answer_search AFTER INSERT OR UPDATE OF response, conversation_id OR DELETE"
    " ON answer FOR EACH ROW EXECUTE FUNCTION answer_search_on_write()",
    "INSERT INTO conversation_search (conversation_id, vector)"
    " SELECT id, conversation_search_vector(id) FROM conversation",
]


def up(migrator, db):
    for name, columns in _INDEXES.items():
        migrator.migrate(migrator.add_index("conversation", columns, name=name))
    db.execute_sql(_UNANSWERED)
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
        db.execute_sql(_config_function(db))
        db.execute_sql(_query_function(db))
        for statement in _POSTGRES:
            db.execute_sql(statement)
    else:
        for statement in _SQLITE:
            db.execute_sql(statement)


def _configurations(db):
    """The configurations of _LANGUAGES this PostgreSQL server has."""
    present = {name for (name,) in db.execute_sql("SELECT cfgname FROM pg_ts_config").fetchall()}
    return {tag: name for tag, name in _LANGUAGES.items() if name in present}


def _config_function(db):
    """conversation_text_config(locale): the configuration of the locale's language."""
    cases = " ".join(
        f"WHEN '{tag}' THEN '{name}'::regconfig" for tag, name in _configurations(db).items()
    )
    return (
        "CREATE FUNCTION conversation_text_config(locale text) RETURNS regconfig"
        " LANGUAGE sql IMMUTABLE AS $$ SELECT CASE lower(split_part(locale, '-', 1))"
        f" {cases} ELSE 'simple'::regconfig END $$"
    )


def _query_function(db):
    """conversation_search_query(words): the words as a query of every configuration a
    conversation may be stored in, so that each matches in its own language."""
    names = ["simple", *sorted(set(_configurations(db).values()))]
    parts = " || ".join(f"plainto_tsquery('{name}', unaccent(words))" for name in names)
    return (
        "CREATE FUNCTION conversation_search_query(words text) RETURNS tsquery"
        f" LANGUAGE sql STABLE AS $$ SELECT {parts} $$"
    )


def down(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("DROP TRIGGER answer_search ON answer")
        db.execute_sql("DROP TRIGGER conversation_search ON conversation")
        db.execute_sql("DROP TABLE conversation_search")
        for function in (
            "answer_search_on_write()",
            "conversation_search_on_write()",
            "conversation_search_vector(integer)",
            "conversation_search_text(text, text)",
            "conversation_search_query(text)",
            "conversation_text_config(text)",
        ):
            db.execute_sql(f"DROP FUNCTION {function}")
    else:
        for trigger in ("conversation_search_insert", "conversation_search_update",
                        "conversation_search_delete", "answer_search_insert",
                        "answer_search_update", "answer_search_delete"):  # fmt: skip
            db.execute_sql(f"DROP TRIGGER {trigger}")
        db.execute_sql("DROP TABLE conversation_search")
    db.execute_sql("DROP INDEX conversation_organisation_unanswered")
    for name in _INDEXES:
        migrator.migrate(migrator.drop_index("conversation", name))
