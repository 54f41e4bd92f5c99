"""Full-text search in each database's own machinery (migration 0010 builds both).

SQLite: the FTS5 table conversation_search, ranked by bm25. PostgreSQL: the tsvector of
conversation_search with its GIN index, ranked by ts_rank. The words searched for reach
either as a value, never as SQL, and never as query syntax: each word is an FTS5 phrase
in double quotes (so `NEAR`, `OR`, `*` or `^` are words), and PostgreSQL's
plainto_tsquery reads no operators at all.
"""

from __future__ import annotations

from typing import Any

import peewee

from server.storage.prepared import parameter

# FTS5's hidden column named after its table: the left side of MATCH, bm25's argument.
_FTS5_TABLE = peewee.SQL("conversation_search")


def search_value(db: peewee.Database, words: str) -> str:
    """The value the `search` parameter takes for these words (separated by spaces)."""
    if isinstance(db, peewee.PostgresqlDatabase):
        return words
    # The words hold letters, digits and marks only: no double quote to escape.
    return " ".join(f'"{word}"' for word in words.split())


def matches(db: peewee.Database) -> Any:
    """The conversations that match the `search` parameter: their `id` and `relevance`
    (higher is better)."""
    if isinstance(db, peewee.PostgresqlDatabase):
        table: Any = peewee.Table("conversation_search", ("conversation_id", "vector"))
        asked = peewee.SQL("asked")
        query = peewee.fn.conversation_search_query(parameter("search"))
        # float8: the rank goes into page tokens and comes back exactly as it was read.
        relevance = peewee.fn.ts_rank(table.vector, asked).cast("float8")
        return (
            table.select(table.conversation_id.alias("id"), relevance.alias("relevance"))
            .from_(table, query.alias("asked"))
            .where(peewee.NodeList((table.vector, peewee.SQL("@@"), asked)))
            .alias("matches")
        )
    fts: Any = peewee.Table("conversation_search", ("rowid",))
    return (
        fts.select(fts.rowid.alias("id"), (0 - peewee.fn.bm25(_FTS5_TABLE)).alias("relevance"))
        .where(peewee.NodeList((_FTS5_TABLE, peewee.SQL("MATCH"), parameter("search"))))
        .alias("matches")
    )
