"""Full-text search over a conversation's question and answers, the indexes of the
organisation-wide List and of its `answers_count desc` order, and the counts a List's
summary reads for a whole organisation or for the answered conversations alone.

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
# organisation_count: per organisation, what conversation_count holds per product, so that
# an organisation-wide summary reads one row. conversation_count.answered_count: the
# conversations with at least one answer. Both are kept by triggers on conversation.
# Every transaction that writes them takes organisation_count's row before any
# conversation_count row (creates insert their conversations before counting them, an
# answer counts on its conversation first), so concurrent writers never deadlock.
_ORGANISATION_COUNT = (
    "CREATE TABLE organisation_count ("
    " organisation_id integer PRIMARY KEY REFERENCES organisation (id),"
    " question_count bigint NOT NULL DEFAULT 0, answers_count bigint NOT NULL DEFAULT 0,"
    " answered_count bigint NOT NULL DEFAULT 0)"
)
_COUNTS_BACKFILL = [
    "INSERT INTO organisation_count (organisation_id, question_count, answers_count,"
    " answered_count) SELECT organisation_id, COUNT(*), SUM(answers_count),"
    " SUM(CASE WHEN answers_count > 0 THEN 1 ELSE 0 END) FROM conversation"
    " GROUP BY organisation_id",
    "UPDATE conversation_count SET answered_count = (SELECT COUNT(*) FROM conversation c"
    " WHERE c.organisation_id = conversation_count.organisation_id"
    " AND c.sku = conversation_count.sku AND c.locale = conversation_count.locale"
    " AND c.answers_count > 0)",
]
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
_RECOUNTED = [
    "UPDATE organisation_count SET"
    " answers_count = answers_count + {new}.answers_count - {old}.answers_count,"
    f" answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = {new}.organisation_id",
    f"UPDATE conversation_count SET answered_count = answered_count + {_ANSWERED_DELTA}"
    " WHERE organisation_id = {new}.organisation_id AND sku = {new}.sku"
    " AND locale = {new}.locale",
]
_SQLITE_COUNTS = [
    "CREATE TRIGGER conversation_counted AFTER INSERT ON conversation BEGIN "
    + _ADDED.format(
        rows="SELECT new.organisation_id, 1, new.answers_count,"
        " CASE WHEN new.answers_count > 0 THEN 1 ELSE 0 END WHERE true"
    )
    + "; END",
    "CREATE TRIGGER conversation_recounted AFTER UPDATE OF answers_count ON conversation"
    " BEGIN " + "; ".join(u.format(new="new", old="old") for u in _RECOUNTED) + "; END",
]
_POSTGRES_COUNTS = [
    "CREATE FUNCTION conversation_counted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + _ADDED.format(
        rows="SELECT organisation_id, COUNT(*), SUM(answers_count),"
        " SUM(CASE WHEN answers_count > 0 THEN 1 ELSE 0 END) FROM added"
        " GROUP BY organisation_id ORDER BY organisation_id"
    )
    + "; RETURN NULL; END $$",
    "CREATE TRIGGER conversation_counted AFTER INSERT ON conversation"
    " REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION conversation_counted()",
    "CREATE FUNCTION conversation_recounted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + "; ".join(u.format(new="NEW", old="OLD") for u in _RECOUNTED)
    + "; RETURN NULL; END $$",
    "CREATE TRIGGER conversation_recounted AFTER UPDATE OF answers_count ON conversation"
    " FOR EACH ROW WHEN (OLD.answers_count IS DISTINCT FROM NEW.answers_count)"
    " EXECUTE FUNCTION conversation_recounted()",
]
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

# What a search is limited to, held beside the text as words no search can name: on
# SQLite in a column of its own (`o` organisation id, `p` organisation id `x` the sku in
# hexadecimal), on PostgreSQL as lexemes starting with `@`, a character searched words
# never hold.
_SQLITE_SCOPE = (
    "'o' || {r}.organisation_id || ' p' || {r}.organisation_id || 'x' || lower(hex({r}.sku))"
)
_SQLITE = [
    "CREATE VIRTUAL TABLE conversation_search USING fts5("
    " scope, question, answers, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER conversation_search_insert AFTER INSERT ON conversation BEGIN"
    " INSERT INTO conversation_search (rowid, scope, question, answers)"
    f" VALUES (new.id, {_SQLITE_SCOPE.format(r='new')}, new.question, ''); END",
    "CREATE TRIGGER conversation_search_update AFTER UPDATE OF question, sku, organisation_id"
    " ON conversation BEGIN UPDATE conversation_search SET question = new.question,"
    f" scope = {_SQLITE_SCOPE.format(r='new')} WHERE rowid = new.id; END",
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
    "INSERT INTO conversation_search (rowid, scope, question, answers)"
    f" SELECT id, {_SQLITE_SCOPE.format(r='conversation')}, question,"
    " coalesce((SELECT group_concat(response, ' ') FROM answer"
    " WHERE conversation_id = conversation.id), '') FROM conversation",
]

_POSTGRES = [
    "CREATE TABLE conversation_search ("
    " conversation_id integer PRIMARY KEY REFERENCES conversation (id) ON DELETE CASCADE,"
    " vector tsvector NOT NULL)",
    "CREATE INDEX conversation_search_vector ON conversation_search USING gin (vector)",
    "CREATE FUNCTION conversation_search_scope(organisation integer, sku text) RETURNS tsvector"
    " LANGUAGE sql IMMUTABLE AS $$ SELECT array_to_tsvector(ARRAY['@o' || organisation,"
    " '@p' || organisation || 'x' || encode(convert_to(sku, 'UTF8'), 'hex')]) $$",
    "CREATE FUNCTION conversation_search_scope_query(organisation integer, sku text)"
    " RETURNS tsquery LANGUAGE sql IMMUTABLE AS $$ SELECT quote_literal(CASE WHEN sku IS NULL"
    " THEN '@o' || organisation"
    " ELSE '@p' || organisation || 'x' || encode(convert_to(sku, 'UTF8'), 'hex') END)::tsquery $$",
    "CREATE FUNCTION conversation_search_text(locale text, body text) RETURNS tsvector"
    " LANGUAGE sql STABLE AS"
    " $$ SELECT to_tsvector(conversation_text_config(locale), unaccent(coalesce(body, ''))) $$",
    "CREATE FUNCTION conversation_search_vector(conversation integer) RETURNS tsvector"
    " LANGUAGE sql STABLE AS"
    " $$ SELECT conversation_search_text(c.locale, c.question)"
    " || conversation_search_text(c.locale, (SELECT string_agg(a.response, ' ' ORDER BY a.id)"
    " FROM answer a WHERE a.conversation_id = c.id))"
    " || conversation_search_scope(c.organisation_id, c.sku)"
    " FROM conversation c WHERE c.id = conversation $$",
    "CREATE FUNCTION conversation_search_on_write() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'INSERT' THEN"
    "   INSERT INTO conversation_search (conversation_id, vector)"
    "   VALUES (NEW.id, conversation_search_text(NEW.locale, NEW.question)"
    "    || conversation_search_scope(NEW.organisation_id, NEW.sku));"
    "  ELSE"
    "   UPDATE conversation_search SET vector = conversation_search_vector(NEW.id)"
    "   WHERE conversation_id = NEW.id;"
    "  END IF;"
    "  RETURN NULL;"
    " END $$",
    "CREATE TRIGGER conversation_search AFTER INSERT OR UPDATE OF question, locale, sku,"
    " organisation_id ON conversation FOR EACH ROW EXECUTE FUNCTION conversation_search_on_write()",
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
    answered = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    migrator.migrate(migrator.add_column("conversation_count", "answered_count", answered))
    db.execute_sql(_ORGANISATION_COUNT)
    for statement in _COUNTS_BACKFILL:
        db.execute_sql(statement)
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in _POSTGRES_COUNTS if postgres else _SQLITE_COUNTS:
        db.execute_sql(statement)
    if postgres:
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
    on_table = " ON conversation" if isinstance(db, PostgresqlDatabase) else ""
    db.execute_sql("DROP TRIGGER conversation_recounted" + on_table)
    db.execute_sql("DROP TRIGGER conversation_counted" + on_table)
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("DROP FUNCTION conversation_recounted()")
        db.execute_sql("DROP FUNCTION conversation_counted()")
    db.execute_sql("DROP TABLE organisation_count")
    migrator.migrate(migrator.drop_column("conversation_count", "answered_count"))
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("DROP TRIGGER answer_search ON answer")
        db.execute_sql("DROP TRIGGER conversation_search ON conversation")
        db.execute_sql("DROP TABLE conversation_search")
        for function in (
            "answer_search_on_write()",
            "conversation_search_on_write()",
            "conversation_search_vector(integer)",
            "conversation_search_text(text, text)",
            "conversation_search_scope(integer, text)",
            "conversation_search_scope_query(integer, text)",
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
    for name in _INDEXES:
        migrator.migrate(migrator.drop_index("conversation", name))
