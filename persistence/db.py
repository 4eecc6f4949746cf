"""One async engine per process, with SQLite tuned for concurrent readers (WAL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.settings import Settings
from persistence.immediate import Work, writer_unit
from persistence.writer import GroupCommitWriter, sqlite_write_engine

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 5
# A pooled PostgreSQL connection idle for longer than this is pinged when it is checked out.
IDLE_PING_SECONDS = 1.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def ensure_sqlite_dir(database_url: str) -> None:
    """Create the folder of a SQLite file so a fresh checkout just runs."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if settings.is_sqlite:
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # a server that does not answer fails the request in seconds (asyncpg waits 60 s)
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )
    event.listen(engine.sync_engine, "checkin", _idle_from_now)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """``pool_pre_ping`` for connections that sat idle: SQLAlchemy's pings every checkout, and
    on asyncpg a ping is three round trips (BEGIN, ``;``, ROLLBACK), as many as the statements of
    a small request. A connection in steady use is not pinged; if its server went away meanwhile,
    the statement fails (``DATABASE_UNAVAILABLE``, retryable) and the connection is invalidated,
    by SQLAlchemy or by ``fast_read``. A dead idle one is replaced here (the pool retries)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():  # the server said goodbye: no round trip needed
        raise DisconnectionError("the pooled connection was closed by the server")
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since <= IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise DisconnectionError("the pooled connection did not answer a ping") from error


class Database:
    """The engine and its session factory, shared by every request of one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.writer = (
            GroupCommitWriter(sync_engine=sqlite_write_engine(settings.database_url, _sqlite_pragmas))
            if settings.is_sqlite
            else GroupCommitWriter(async_engine=self.engine)
        )
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_dispose(self, close: Callable[[], Awaitable[None]]) -> None:
        """``close`` runs when the database is disposed (what lives as long as its engine)."""
        self._closers.append(close)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads: it never commits."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A service's unit of work: commits when the block ends, rolls back if it raises."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def heavy_transaction(self, work: Work[T]) -> T:
        """A large unit of work (a fold, a snapshot build) in one transaction of its own.

        SQLite: a unit of the group-commit writer, in its thread (``heavy``). SQLite has one
        writer: on a connection of its own such work held the write lock across its statements,
        each a round trip to aiosqlite's thread with the event loop's requests in between, and
        every log batch meanwhile found the database locked and waited; as the writer's unit it
        holds the lock only while it works and the log batches queue behind it. A unit that
        raises rolls back alone (the writer's savepoints)."""
        if self.writer.sync_engine is not None:
            return await self.writer.run(writer_unit(work), heavy=True)
        async with self.transaction() as session:
            return await work(session)

    async def ping(self, within_seconds: float = 2.0) -> float:
        """Round-trip to the database; returns milliseconds or raises."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(within_seconds), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (loop.time() - start) * 1000

    async def dispose(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            await close()
        await self.writer.close()
        await self.engine.dispose()
