"""Service code written for an ``AsyncSession``, run as a unit of the SQLite group-commit writer.

A fold or a snapshot build is a coroutine of ``AsyncSession`` calls. On SQLite it runs best as
one unit of the writer (in the writer's thread, on its connection): it holds the write lock only
while it works, log batches queue behind it instead of finding the database locked, and no
statement crosses threads. ``Immediate`` offers the session methods such code calls over the
writer's synchronous ``Connection``; each completes at once, so the coroutine runs to its end in
one step (``at_once``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
Work = Callable[[AsyncSession], Coroutine[Any, Any, T]]


class Immediate:
    """The ``AsyncSession`` (and ``AsyncConnection``) methods the services call, synchronous."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect

    def get_bind(self) -> Connection:
        return self.conn

    async def connection(self) -> Immediate:
        return self

    async def execute(self, statement: Any, params: Any = None) -> Any:
        return self.conn.execute(statement, params)

    async def exec_driver_sql(self, statement: str) -> Any:
        return self.conn.exec_driver_sql(statement)

    async def scalar(self, statement: Any, params: Any = None) -> Any:
        return self.conn.scalar(statement, params)

    async def scalars(self, statement: Any) -> Any:
        return self.conn.scalars(statement)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` gets the ``Connection`` (``AsyncSession.run_sync`` would give a ``Session``)."""
        return fn(self.conn, *args, **kwargs)


def at_once(step: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (it runs over ``Immediate``)."""
    try:
        step.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    step.close()
    raise RuntimeError("service code over a synchronous connection waited for something")


def writer_unit(work: Work[T]) -> Callable[[Connection], T]:
    """``work`` as a unit of the group-commit writer (in its transaction, on its connection)."""

    def unit(conn: Connection) -> T:
        return at_once(work(cast(AsyncSession, Immediate(conn))))

    return unit
