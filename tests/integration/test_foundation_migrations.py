"""One migration history that builds the schema from empty on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import persistence.models  # noqa: F401 - registers the tables
from app.settings import Settings
from persistence.db import Database
from persistence.migrate import alembic_config, migrate_sync


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _inspect(url: str) -> tuple[str, set[str], list[object]]:
    async def run() -> tuple[str, set[str], list[object]]:
        db = Database(Settings(database_url=url))
        try:
            async with db.engine.connect() as conn:
                version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
                tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
                diff = await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
                )
            return version, tables, diff
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_migrations_build_the_schema_from_empty(each_dbs):
    # given: an empty database
    url = each_dbs.empty_url()
    # when
    migrate_sync(Settings(database_url=url))
    migrate_sync(Settings(database_url=url))  # and again: a no-op
    # then
    version, tables, diff = _inspect(url)
    assert version == _head()
    assert {"users", "event_log", "interaction_log", "session_log"} <= tables
    assert set(SQLModel.metadata.tables) <= tables
    assert diff == [], f"models and migrations disagree: {diff}"
