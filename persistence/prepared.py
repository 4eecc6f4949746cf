"""Write statements compiled once per dialect, for the group-commit writer's hot path.

``INSERT ... ON CONFLICT DO UPDATE`` has no cache key in SQLAlchemy, so it is
compiled again on every execution, and even a cached ``executemany`` spends
most of a small row's time building its parameters (``construct_params``, one
dict per row, then the type processors). A ``Prepared`` statement does that
work once:

- on pysqlite (the SQLite writer's synchronous connection) it keeps the
  ``qmark`` SQL and, per parameter, the dialect's own bind processor, and hands
  the driver's ``executemany`` one tuple per row: values are converted exactly
  as SQLAlchemy would store them, without its per-row machinery;
- elsewhere (asyncpg) it executes through SQLAlchemy: a plain INSERT as it is
  (SQLAlchemy caches its compiled form), an upsert rendered once into a
  ``text()`` with the same typed bind parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

_BASE_DIALECTS: dict[str, Callable[..., Dialect]] = {
    "postgresql": postgresql.base.PGDialect,
    "sqlite": sqlite.base.SQLiteDialect,
}


def as_text(statement: ClauseElement, dialect_name: str) -> sa.TextClause:
    """``statement`` rendered once into a ``text()`` with the same typed bind parameters: what
    SQLAlchemy would otherwise compile on every execution of a statement it cannot cache.
    Bind parameters without a value are named ones the caller gives at execution; those
    with one (literals) keep it."""
    # the base dialect renders :name parameters (asyncpg's would render $1)
    compiled = statement.compile(dialect=_BASE_DIALECTS[dialect_name](paramstyle="named"))
    binds = {
        rendered: sa.bindparam(rendered, value=bind.value, type_=bind.type)
        if not bind.required
        else sa.bindparam(rendered, type_=bind.type)
        for bind, rendered in compiled.bind_names.items()  # type: ignore[attr-defined]
    }
    return sa.text(str(compiled)).bindparams(*binds.values())


@dataclass(frozen=True, slots=True)
class _Direct:
    """The driver's SQL and how to turn one row mapping into its parameter tuple."""

    sql: str
    fetch: Callable[[Mapping[str, Any]], Any]  # the values in parameter order
    constants: dict[str, Any]  # parameters the statement fixes itself (``min(1.0, ...)``)
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def row(self, values: Mapping[str, Any]) -> list[Any]:
        out = list(self.fetch({**values, **self.constants} if self.constants else values))
        for index, process in self.processors:
            out[index] = process(out[index])
        return out


class _DatetimeText:
    """SQLite's DATETIME text of a value by ``isoformat``; the last value's text is kept, shared
    by every column (a log's start, end and receive times are one instant, and a batch's rows
    share their ``now``): an ``isoformat`` costs thousands of instructions."""

    last: tuple[Any, Any] = (None, None)

    def __init__(self, process: Callable[[Any], Any]) -> None:
        self.process = process

    def __call__(self, value: Any) -> Any:
        seen = _DatetimeText.last
        if seen[0] is value:
            return seen[1]
        if type(value) is not datetime:
            return self.process(value)
        if value == seen[0] and value.tzinfo is seen[0].tzinfo:  # equal, so the same local fields
            return seen[1]
        text = value.isoformat(" ", "microseconds")[:26]
        _DatetimeText.last = (value, text)
        return text


def _faster(impl: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The dialect's bind processor, except SQLite's DATETIME and DATE in their default storage
    formats: those fill a format string from a dict per value (a few per log row); ``isoformat``
    gives the same text (the local fields of an aware value, with the offset cut off)."""
    process: Callable[[Any], Any] | None = impl.bind_processor(dialect)
    if process is None:
        return None
    kind = type(impl)
    if kind is sqlite.DATETIME and impl._storage_format == sqlite.DATETIME._storage_format:
        return _DatetimeText(process)
    if kind is sqlite.DATE and impl._storage_format == sqlite.DATE._storage_format:

        def date_text(value: Any) -> Any:
            return value.isoformat() if type(value) is date else process(value)

        return date_text
    return process


class Prepared:
    def __init__(self, build: Callable[[str], ClauseElement], cacheable: bool = False) -> None:
        """``build(dialect_name)`` makes the statement, with named ``bindparam``s for the values;
        ``cacheable``: SQLAlchemy can cache it as it is (no ON CONFLICT clause)."""
        self._build = build
        self._cacheable = cacheable
        self._statements: dict[str, Any] = {}  # per dialect, for the SQLAlchemy path
        self._direct: _Direct | None = None

    @classmethod
    def insert(cls, table: sa.Table) -> Prepared:
        """A plain INSERT of every column but an autoincrementing key and the columns the database
        fills (``server_default``): rows must name them all."""
        names = [
            c.name for c in table.columns if c is not table.autoincrement_column and c.server_default is None
        ]
        statement = table.insert().values({name: sa.bindparam(name) for name in names})
        return cls(lambda _dialect: statement, cacheable=True)

    def _statement(self, conn: Connection) -> Any:
        """What SQLAlchemy executes: the statement itself when it caches it, else a ``text()``."""
        name = conn.dialect.name
        prepared = self._statements.get(name)
        if prepared is None:
            prepared = self._statements[name] = (
                self._build(name) if self._cacheable else as_text(self._build(name), name)
            )
        return prepared

    def _direct_for(self, dialect: Dialect) -> _Direct:
        if self._direct is None:
            compiled = self._build(dialect.name).compile(dialect=dialect)
            by_name = {rendered: bind for bind, rendered in compiled.bind_names.items()}  # type: ignore[attr-defined]
            names = list(compiled.positiontup or ())  # type: ignore[attr-defined]
            binds = [by_name[name] for name in names]
            processors = [_faster(bind.type.dialect_impl(dialect), dialect) for bind in binds]
            fetch = itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
            self._direct = _Direct(
                str(compiled),
                fetch,
                {bind_name: bind.effective_value for bind_name, bind in by_name.items() if not bind.required},
                tuple((index, process) for index, process in enumerate(processors) if process is not None),
            )
        return self._direct

    def __call__(self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        rows = [params] if isinstance(params, Mapping) else params
        if conn.dialect.driver == "pysqlite":
            direct = self._direct_for(conn.dialect)
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(direct.sql, [direct.row(row) for row in rows])
            finally:
                cursor.close()
        else:
            conn.execute(self._statement(conn), rows)
