"""Full-text search in each database's own machinery (migration 0010 builds both).

SQLite: the FTS5 table conversation_search, ranked by bm25. PostgreSQL: the tsvector of
conversation_search with its GIN index, ranked by ts_rank. Each conversation's entry also
holds its organisation and product as words no search can name, so that a search within
a product finds that product's matches alone in the index, however many other products'
conversations hold the same words; an organisation-wide search finds the words' matches
and keeps the organisation's (its scope word would list too many to be worth it). The
words searched for reach either database as a value, never as SQL, and never as query
syntax: each word is an FTS5 phrase in double quotes (so `NEAR`, `OR`, `*` or `^` are
words), and PostgreSQL's plainto_tsquery reads no operators at all.
"""

from __future__ import annotations

from typing import Any

import peewee

from server.storage.models import OrganisationRow
from server.storage.prepared import parameter

# FTS5's hidden column named after its table: the left side of MATCH, bm25's argument.
_FTS5_TABLE = peewee.SQL("conversation_search")


def search_value(db: peewee.Database, words: str) -> str:
    """The value the `search` parameter takes for these words (separated by spaces)."""
    if _postgres(db):
        return words
    # The words hold letters, digits and marks only: no double quote to escape.
    return " ".join(f'"{word}"' for word in words.split())


def matches(db: peewee.Database, by_sku: bool) -> Any:
    """The conversations of the organisation `trkref` (and product `sku` when `by_sku`)
    that match the `search` parameter: their `id` and `relevance` (higher is better), as a
    common table expression named `matches`.

    Materialized on SQLite: its planner would otherwise run the full-text query once per
    row of the product or organisation instead of once.
    """
    found = _postgres_matches(by_sku) if _postgres(db) else _sqlite_matches(by_sku)
    return found.cte("matches", materialized=not _postgres(db) or None)


def _postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)


def _organisation_id() -> peewee.SelectQuery:
    return OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == parameter("trkref")
    )


def _postgres_matches(by_sku: bool) -> Any:
    table: Any = peewee.Table("conversation_search", ("conversation_id", "vector"))
    asked, scope = peewee.SQL("asked"), peewee.SQL("scope")
    words = peewee.fn.conversation_search_query(parameter("search"))
    # float8: the rank goes into page tokens and comes back exactly as it was read.
    relevance = peewee.fn.ts_rank(table.vector, asked).cast("float8")
    found = table.select(table.conversation_id.alias("id"), relevance.alias("relevance"))
    if not by_sku:  # an organisation's scope word lists too many: the join keeps them
        return found.from_(table, words.alias("asked")).where(
            peewee.NodeList((table.vector, peewee.SQL("@@"), asked))
        )
    within = peewee.fn.conversation_search_scope_query(_organisation_id(), parameter("sku"))
    both = peewee.NodeList((asked, peewee.SQL("&&"), scope), parens=True)
    return found.from_(table, words.alias("asked"), within.alias("scope")).where(
        peewee.NodeList((table.vector, peewee.SQL("@@"), both))
    )


def _sqlite_matches(by_sku: bool) -> Any:
    fts: Any = peewee.Table("conversation_search", ("rowid",))
    expression = (
        peewee.SQL("'{question answers} : ('").concat(parameter("search")).concat(peewee.SQL("')'"))
    )
    # FTS5 checks a column filter against each entry its scope word lists: the product's
    # few are worth it, an organisation's many are not (the join keeps its conversations).
    if by_sku:
        scope = peewee.SQL("'scope : p'").concat(_organisation_id()).concat(peewee.SQL("'x'"))
        scope = scope.concat(peewee.fn.lower(peewee.fn.hex(parameter("sku"))))
        expression = scope.concat(peewee.SQL("' AND '")).concat(expression)
    return fts.select(
        fts.rowid.alias("id"), (0 - peewee.fn.bm25(_FTS5_TABLE)).alias("relevance")
    ).where(peewee.NodeList((_FTS5_TABLE, peewee.SQL("MATCH"), expression)))
