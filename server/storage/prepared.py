"""Statements built once: peewee renders a query's SQL, which then runs with new values.

Rendering a query costs more than running it (docs/architecture.md, SQL
rendered once), and its text depends only
on its shape. A prepared statement names its parameters; each run gives their
values. Rows come back as tuples: making a model instance per row cost more
than the query too.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import peewee


class _Name(str):
    """A parameter's name where its value goes, told apart from the literals of a query."""


def parameter(name: str) -> peewee.Value:
    """A named parameter of a prepared statement, rendered as the database's placeholder."""
    return peewee.Value(_Name(name), converter=False)


@dataclass(frozen=True)
class Prepared:
    """SQL text and its parameters in order: names given values at each run, or literals."""

    sql: str
    parameters: tuple[object, ...]

    def run(self, db: peewee.Database, values: Mapping[str, object]) -> Sequence[tuple[Any, ...]]:
        """The rows the statement returns for these values."""
        cursor = db.execute_sql(self.sql, self._params(values))  # type: ignore[no-untyped-call]
        return cursor.fetchall()  # type: ignore[no-any-return]

    def execute(self, db: peewee.Database, values: Mapping[str, object]) -> None:
        """Run a statement that returns no rows."""
        db.execute_sql(self.sql, self._params(values))  # type: ignore[no-untyped-call]

    def _params(self, values: Mapping[str, object]) -> list[object]:
        return [values[p] if isinstance(p, _Name) else p for p in self.parameters]


def prepare(query: peewee.Query) -> Prepared:
    """The statement of a query, its values parameter()s or literals."""
    sql, parameters = query.sql()
    return Prepared(str(sql), tuple(parameters))


def stored_time(value: datetime.datetime | str) -> datetime.datetime:
    """A timestamp column as read: SQLite gives its text, PostgreSQL a naive datetime, both UTC."""
    if isinstance(value, str):  # a naive UTC datetime's text: read with its offset at once
        return datetime.datetime.fromisoformat(value + "+00:00")
    return value.replace(tzinfo=datetime.UTC)
