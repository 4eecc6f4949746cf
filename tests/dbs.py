"""Real test databases: a migrated template per run, a fresh copy per test.

SQLite copies the template file; PostgreSQL clones a template database
(CREATE DATABASE ... TEMPLATE), so every test starts from the real migrations
without paying for them again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from app.settings import Settings
from persistence.migrate import migrate_sync

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_admin_url() -> str:
    """Where to create test databases: DATABASE_URL when it is PostgreSQL, else the local server."""
    url = os.environ.get("DATABASE_URL") or os.environ.get("TRAINER_DATABASE_URL") or ""
    if url.startswith("postgres"):
        return url
    return os.environ.get("TRAINER_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL)


def _plain(url: str) -> str:
    return str(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))


def _async(url: str) -> str:
    return str(make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False))


def _with_database(url: str, name: str) -> str:
    return str(make_url(url).set(database=name).render_as_string(hide_password=False))


async def _pg_exec(sql: str) -> None:
    conn = await asyncpg.connect(_plain(pg_admin_url()), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_unavailable_reason() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(_plain(pg_admin_url()), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL not reachable at {pg_admin_url()}: {exc.__class__.__name__}: {exc}"
    return None


class SqliteDatabases:
    kind = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        migrate_sync(Settings(database_url=f"sqlite+aiosqlite:///{self.template}"))

    def empty_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.root / uuid.uuid4().hex}.db"

    async def fresh(self) -> str:
        path = self.root / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"

    async def drop(self, url: str) -> None:
        path = Path(str(make_url(url).database))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresDatabases:
    kind = "postgresql"

    def __init__(self) -> None:
        self.prefix = f"tc_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tmpl"
        asyncio.run(_pg_exec(f'CREATE DATABASE "{self.template}"'))
        migrate_sync(Settings(database_url=_async(_with_database(pg_admin_url(), self.template))))
        self._count = 0

    def _name(self) -> str:
        self._count += 1
        return f"{self.prefix}_{self._count}"

    def empty_url(self) -> str:
        name = self._name()
        asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
        return _async(_with_database(pg_admin_url(), name))

    async def fresh(self) -> str:
        name = self._name()
        await _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return _async(_with_database(pg_admin_url(), name))

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_sync(self, url: str) -> None:
        asyncio.run(self.drop(url))

    def close(self) -> None:
        async def drop_all() -> None:
            conn = await asyncpg.connect(_plain(pg_admin_url()), timeout=5)
            try:
                names = await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{self.prefix}%"
                )
                for row in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop_all())
