"""Group commit: concurrent requests share one transaction and one COMMIT.

A commit costs about a millisecond through SQLAlchemy, far more than the
statements of one small log. Callers hand a unit of work to the writer and
wait; the writer runs every unit that queued up since the previous batch in
one transaction (units of one kind merged into one executemany per table),
commits once, and only then answers each caller. If a unit fails, the batch is
rolled back and runs again with savepoints, so that a failing unit rolls back
alone. Under light load a batch is one unit, so latency is what it would be
anyway.

Units are plain synchronous functions of a SQLAlchemy ``Connection`` (Core
statements), so the same unit runs on both databases:

- SQLite: the writer owns the only write connection (SQLite has one writer
  anyway), a synchronous pysqlite one, and runs a batch right on the event
  loop: its statements are C calls of microseconds, and a worker thread would
  cost more than it saves, because the two threads would pass the GIL back and
  forth on every row. That holds only while nothing else holds the database's
  write lock, so the loop never waits for it: BEGIN IMMEDIATE is tried without
  a busy timeout, and a batch that finds the database locked (another process,
  or a long transaction such as a snapshot build on the async engine) goes to
  a thread of its own that may wait. Transactions open with BEGIN IMMEDIATE, so
  they never fail half-way on a lock upgrade.
- PostgreSQL: the batch runs on an asyncpg connection, each unit through
  ``run_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from persistence.faults import database_unreachable

T = TypeVar("T")
Outcome = tuple[BaseException | None, Any]
Merge = Callable[[Connection, list[Any]], list[Any]]


@dataclass(frozen=True, slots=True)
class Unit:
    """One caller's work. Units that share a ``merge`` function and queue up together run
    as one call of it (one executemany per table instead of statements per unit); if that
    fails, each runs alone through ``alone`` in its own savepoint, so one bad unit cannot
    spoil the others."""

    alone: Callable[[Connection], Any]
    merge: Merge | None = None
    item: Any = None
    heavy: bool = False  # SQLite: its batch runs in the writer's thread, off the event loop


log = logging.getLogger("trainer_console.writer")


BUSY_TIMEOUT_MS = 10_000
_SQLITE_BUSY = 5


def sqlite_write_engine(url: str, on_connect: Callable[[Any, Any], None]) -> Engine:
    """One synchronous connection, driver transactions off, our own BEGIN IMMEDIATE."""
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(
        sync_url,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    def connect(dbapi_connection: Any, record: Any) -> None:
        on_connect(dbapi_connection, record)
        # statement journals (a file created and deleted per batch otherwise) stay in memory
        dbapi_connection.execute("PRAGMA temp_store = MEMORY")
        dbapi_connection.isolation_level = None

    def begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", begin)
    return engine


def _busy_timeout(conn: Connection, milliseconds: int) -> None:
    """Set the connection's wait for the write lock (remembered, so a batch rarely pays for it)."""
    if conn.info.get("busy_timeout_ms") != milliseconds:
        # on the driver's connection: through SQLAlchemy it would open a transaction
        conn.connection.driver_connection.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")  # type: ignore[union-attr]
        conn.info["busy_timeout_ms"] = milliseconds


def _locked(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlite_errorcode", None) == _SQLITE_BUSY


def _groups(units: list[Unit]) -> Iterator[tuple[Merge | None, list[Unit]]]:
    """Runs of consecutive units that share a merge function; a unit without one alone."""
    start = 0
    while start < len(units):
        merge = units[start].merge
        end = start + 1
        while merge is not None and end < len(units) and units[end].merge is merge:
            end += 1
        yield merge, units[start:end]
        start = end


class _Failed(Exception):
    """A group of an optimistic batch raised: the whole batch runs again, carefully."""

    def __init__(self, group: int) -> None:
        super().__init__(group)
        self.group = group


def _run_optimistic(conn: Connection, units: list[Unit]) -> list[Outcome]:
    """Every group at once, without savepoints (two statements each): the usual case."""
    outcomes: list[Outcome] = []
    for index, (merge, group) in enumerate(_groups(units)):
        try:
            if merge is not None and len(group) > 1:
                outcomes.extend((None, result) for result in merge(conn, [unit.item for unit in group]))
            else:
                outcomes.extend((None, unit.alone(conn)) for unit in group)
        except Exception as exc:
            raise _Failed(index) from exc
    return outcomes


# PostgreSQL's deadlock_detected and serialization_failure: the other transaction goes on, and
# this one's unit succeeds when run again (two workers' batches that lock rows in other orders).
_TRANSIENT = frozenset({"40P01", "40001"})
TRANSIENT_RETRIES = 3


def _transient(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _TRANSIENT


def _run_alone(conn: Connection, units: list[Unit]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for unit in units:
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                with conn.begin_nested():
                    outcomes.append((None, unit.alone(conn)))
                break
            except Exception as exc:  # this unit alone is rolled back
                if attempt < TRANSIENT_RETRIES and _transient(exc):
                    log.info("a unit met a transient database error (%s): again", getattr(exc, "orig", exc))
                    continue
                outcomes.append((exc, None))
                break
    return outcomes


def _run_careful(conn: Connection, units: list[Unit], failed: int) -> list[Outcome]:
    """Each group in a savepoint; a group that fails (``failed`` did already) runs unit by
    unit, each in its own savepoint, so that only the failing units fail."""
    outcomes: list[Outcome] = []
    for index, (merge, group) in enumerate(_groups(units)):
        if merge is not None and len(group) > 1 and index != failed:
            try:
                with conn.begin_nested():
                    results = merge(conn, [unit.item for unit in group])
                outcomes.extend((None, result) for result in results)
            except Exception:  # find the culprit: each unit on its own
                log.debug("merged group of %d units failed; running them one by one", len(group))
                outcomes.extend(_run_alone(conn, group))
        else:
            outcomes.extend(_run_alone(conn, group))
    return outcomes


def _run_batch(conn: Connection, units: list[Unit]) -> list[Outcome]:
    """Run and commit a batch: optimistically first; if any unit fails, roll back and run
    the batch again carefully (a failing unit is rare: logs are validated before they queue)."""
    try:
        with conn.begin():
            return _run_optimistic(conn, units)
    except _Failed as failure:
        log.debug("a unit of a batch of %d failed; running the batch again carefully", len(units))
        failed = failure.group
    with conn.begin():
        return _run_careful(conn, units, failed)


def _nothing(_conn: Connection) -> None:
    return None


class GroupCommitWriter:
    def __init__(
        self,
        *,
        sync_engine: Engine | None = None,
        async_engine: AsyncEngine | None = None,
        max_batch: int = 256,
    ) -> None:
        if (sync_engine is None) == (async_engine is None):
            raise ValueError("give the writer exactly one engine")
        self.sync_engine = sync_engine
        self.async_engine = async_engine
        self.max_batch = max_batch
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit") if sync_engine else None
        self._pending: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.units = 0
        self.waited = 0  # batches that found the database locked and waited in the thread
        # Called after each batch with its size and duration in seconds (the composition root
        # hangs the metrics here; this floor knows nothing of them).
        self.on_commit: Callable[[int, float], None] | None = None
        self.on_failure: Callable[[int, float], None] | None = None

    async def run(
        self,
        unit: Callable[[Connection], T],
        merge: Merge | None = None,
        item: Any = None,
        heavy: bool = False,
    ) -> T:
        """Run ``unit`` in a shared transaction; returns once its effects are committed.

        With ``merge``, queued units of the same kind run together as ``merge(conn, items)``,
        which must return one result per item, in order, as ``unit`` would have. ``heavy``: a
        unit of many milliseconds (SQLite: its batch runs in the writer's thread, where SQLite
        works without the GIL, and the event loop goes on serving; later units queue meanwhile)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._serve(), name="group-commit-writer")
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((Unit(unit, merge, item, heavy), future))
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

    def _commit_sync(self, units: list[Unit], wait: bool = True) -> list[Outcome] | None:
        """Run a batch in one transaction; None if ``wait`` is off and the database is locked."""
        assert self.sync_engine is not None
        with self.sync_engine.connect() as conn:
            _busy_timeout(conn, BUSY_TIMEOUT_MS if wait else 0)
            try:
                return _run_batch(conn, units)
            except OperationalError as exc:
                if wait or not _locked(exc):
                    raise
                return None  # rolled back whole: the batch can run again elsewhere

    async def _commit_async(self, units: list[Unit]) -> list[Outcome]:
        assert self.async_engine is not None
        async with self.async_engine.connect() as conn:
            return await conn.run_sync(_run_batch, units)

    async def _commit(self, batch: list[tuple[Unit, asyncio.Future[Any]]]) -> None:
        units = [unit for unit, _future in batch]
        started = time.perf_counter()
        try:
            if self._thread is not None:
                heavy = any(unit.heavy for unit in units)
                outcomes = None if heavy else self._commit_sync(units, wait=False)
                if outcomes is None:  # heavy, or locked by someone else: off the event loop, waiting
                    if not heavy:
                        self.waited += 1
                    loop = asyncio.get_running_loop()
                    outcomes = await loop.run_in_executor(self._thread, self._commit_sync, units)
            else:
                outcomes = await self._commit_async(units)
            assert outcomes is not None
        except Exception as exc:  # the COMMIT failed: nothing of the batch is durable
            if database_unreachable(exc):  # a known outage: one line, the client is told
                log.warning("group commit of %d units failed: database unavailable (%s)", len(batch), exc)
            else:
                log.exception("group commit of %d units failed", len(batch))
            if self.on_failure is not None:
                self.on_failure(len(batch), time.perf_counter() - started)
            for _unit, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.units += len(batch)
        if self.on_commit is not None:
            self.on_commit(len(batch), time.perf_counter() - started)
        for (_unit, future), (error, value) in zip(batch, outcomes, strict=True):
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
                await self.run(_nothing)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self.sync_engine is not None:
            self.sync_engine.dispose()
