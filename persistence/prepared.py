"""Core statements SQLAlchemy cannot cache, compiled once per dialect.

``INSERT ... ON CONFLICT DO UPDATE`` has no cache key in SQLAlchemy, so it is
compiled again on every execution — most of the cost of a small upsert. A
``Prepared`` statement renders it once per dialect into a ``text()`` construct
(which is cached) with the same typed bind parameters, so values are still
converted exactly as SQLAlchemy would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, CursorResult
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

_BASE_DIALECTS: dict[str, Callable[..., Dialect]] = {
    "postgresql": postgresql.base.PGDialect,
    "sqlite": sqlite.base.SQLiteDialect,
}


class Prepared:
    def __init__(self, build: Callable[[str], ClauseElement]) -> None:
        """``build(dialect_name)`` makes the statement, with named ``bindparam``s for the values."""
        self._build = build
        self._texts: dict[str, sa.TextClause] = {}

    def _text(self, conn: Connection) -> sa.TextClause:
        name = conn.dialect.name
        prepared = self._texts.get(name)
        if prepared is None:
            # the base dialect renders :name parameters (asyncpg's would render $1)
            named = _BASE_DIALECTS[name](paramstyle="named")
            compiled = self._build(name).compile(dialect=named)
            binds = {
                rendered: sa.bindparam(rendered, value=bind.value, type_=bind.type)
                if not bind.required
                else sa.bindparam(rendered, type_=bind.type)
                for bind, rendered in compiled.bind_names.items()  # type: ignore[attr-defined]
            }
            prepared = self._texts[name] = sa.text(str(compiled)).bindparams(*binds.values())
        return prepared

    def __call__(
        self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> CursorResult[Any]:
        return conn.execute(self._text(conn), params)
