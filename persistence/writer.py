"""Group commit: concurrent requests share one transaction and one COMMIT.

A commit costs about a millisecond through SQLAlchemy, far more than the
statements of one small log. Callers hand a unit of work to the writer and
wait; the writer runs every unit that queued up while the previous batch was
committing in one transaction, each inside its own SAVEPOINT so a failing unit
rolls back alone, commits once, and only then answers each caller. Under light
load a batch is one unit, so latency is what it would be anyway.

On SQLite the writer owns the only write connection (SQLite has one writer
anyway) and opens its transactions with BEGIN IMMEDIATE, so they never fail
half-way on a lock upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

T = TypeVar("T")
Unit = Callable[[AsyncConnection], Awaitable[Any]]

log = logging.getLogger("trainer_console.writer")


def sqlite_write_engine(url: str, on_connect: Callable[[Any, Any], None]) -> AsyncEngine:
    """One connection, driver transactions off, our own BEGIN IMMEDIATE (savepoints then work)."""
    engine = create_async_engine(
        url, poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0, connect_args={"timeout": 30}
    )

    def connect(dbapi_connection: Any, record: Any) -> None:
        on_connect(dbapi_connection, record)
        dbapi_connection.isolation_level = None

    def begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", connect)
    event.listen(engine.sync_engine, "begin", begin)
    return engine


class GroupCommitWriter:
    def __init__(self, engine: AsyncEngine, max_batch: int = 256) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._pending: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.units = 0

    async def run(self, unit: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``unit`` in a shared transaction; returns once its effects are committed."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._serve(), name="group-commit-writer")
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((unit, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _serve(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Unit, asyncio.Future[Any]]]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            async with self.engine.connect() as conn, conn.begin():
                for unit, future in batch:
                    try:
                        async with conn.begin_nested():
                            outcomes.append((future, None, await unit(conn)))
                    except Exception as exc:  # this unit alone is rolled back
                        outcomes.append((future, exc, None))
        except Exception as exc:  # the COMMIT failed: nothing of the batch is durable
            log.exception("group commit of %d units failed", len(batch))
            for _unit, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.units += len(batch)
        for future, error, value in outcomes:
            if future.done():  # the caller went away; its write is committed all the same
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def close(self) -> None:
        """Finish what is queued (units run in order), then stop."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            if self._pending:

                async def barrier(_conn: AsyncConnection) -> None:
                    return None

                await self.run(barrier)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
