"""Apply the Alembic migration history (one history for SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from app.settings import Settings
from persistence.db import Database, ensure_sqlite_dir

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, database_url: str, revision: str) -> None:
    cfg = alembic_config(database_url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(settings: Settings, revision: str = "heads") -> None:
    """Create or upgrade the schema; safe to run on every start."""
    ensure_sqlite_dir(settings.database_url)
    db = Database(settings)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, settings.database_url, revision)
    finally:
        await db.dispose()


def migrate_sync(settings: Settings, revision: str = "heads") -> None:
    asyncio.run(migrate(settings, revision))
