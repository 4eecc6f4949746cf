"""Limits and live updates through PostgreSQL alone (several workers, no Redis).

Each check is one call of ``trainer_admit`` (migration 0008), atomic under the engine's
bucket row lock; live updates are ``NOTIFY`` on one channel, heard by a ``LISTEN`` connection
in every worker. Its own small asyncpg pool: a check never waits behind request traffic for a
pooled connection, and requests' statements stay exactly what their resolvers send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.coordination.verdicts import Lease, Verdict

CHANNEL = "trainer_live"


def plain_dsn(database_url: str) -> str:
    """asyncpg's own DSN from SQLAlchemy's URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return str(url.render_as_string(hide_password=False))


class PostgresStore:
    name = "postgres"

    def __init__(self, database_url: str, timeout_seconds: float) -> None:
        self._dsn = plain_dsn(database_url)
        self._timeout = timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self.channel = CHANNEL

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise RuntimeError("the coordination store is closed")
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=4, timeout=self._timeout, command_timeout=5
                    )
        return self._pool

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        pool = await self._connection_pool()
        return await pool.fetchrow(sql, *args, timeout=self._timeout)

    async def admit(
        self,
        key: str,
        cost: int,
        per_minute: int,
        max_in_flight: int,
        token: str,
        ttl_seconds: float,
        releases: Sequence[Lease],
    ) -> Verdict:
        row = await self._fetchrow(
            "SELECT verdict, wait FROM trainer_admit($1, $2, $3, $4, $5, $6, $7)",
            key,
            cost,
            per_minute,
            max_in_flight,
            token,
            ttl_seconds,
            [lease.token for lease in releases],
        )
        return Verdict(row["verdict"], float(row["wait"]))

    async def release(self, leases: Sequence[Lease]) -> None:
        await self._fetchrow(
            "DELETE FROM limit_lease WHERE token = ANY($1::text[])", [lease.token for lease in leases]
        )

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> None:
        await self._fetchrow(
            "UPDATE limit_lease SET expires = extract(epoch FROM clock_timestamp()) + $2 "
            "WHERE token = ANY($1::text[])",
            [lease.token for lease in leases],
            ttl_seconds,
        )

    async def in_flight(self, key: str) -> int:
        row = await self._fetchrow(
            "SELECT count(*) AS n FROM limit_lease WHERE key = $1 "
            "AND expires > extract(epoch FROM clock_timestamp())",
            key,
        )
        return int(row["n"])

    async def notify(self, payload: str) -> None:
        await self._fetchrow("SELECT pg_notify($1, $2)", self.channel, payload)

    async def listener(self) -> PostgresListener:
        connection = await asyncpg.connect(self._dsn, timeout=self._timeout)
        listener = PostgresListener(connection, self._timeout)
        try:
            await connection.add_listener(self.channel, listener.heard)
        except BaseException:
            await connection.close()
            raise
        return listener

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:  # close() waits for every connection to come back: not for ever
                async with asyncio.timeout(2.0):
                    await pool.close()
            except TimeoutError:
                pool.terminate()


class PostgresListener:
    def __init__(self, connection: asyncpg.Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def next(self, wait_seconds: float) -> str | None:
        """The next payload; None after ``wait_seconds`` without one. Raises when the link is lost."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # meets a payload, and the listen loop would never stop
            async with asyncio.timeout(wait_seconds):
                return await self._queue.get()
        except TimeoutError:
            # a silent connection may be a dead one: a restart of PostgreSQL shows here
            await self._connection.fetchval("SELECT 1", timeout=self._timeout)
            return None

    async def close(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._connection.close()
        except Exception:
            self._connection.terminate()
