"""P-03 / AG-DATA-02: the database itself refuses to change stored raw logs.

On each database, a record goes in through the API; then raw SQL tries UPDATE,
DELETE, overwriting inserts (INSERT OR REPLACE / REPLACE on SQLite, INSERT ...
ON CONFLICT DO UPDATE on both) and TRUNCATE (PostgreSQL). Each attempt fails
or has no effect, and the stored row is exactly what it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.auth import Role, issue_token
from app.main import create_app
from tests.conftest import GraphQLClient, make_settings
from tests.log_records import FACTORIES, logged

# kind -> (table, id column, stored id, a column to tamper with)
TABLES = {
    "events": ("event_log", "event_id", "ev-0001", "user_id"),
    "interactions": ("interaction_log", "interaction_id", "ia-0001", "user_id"),
    "sessions": ("session_log", "session_id", "ss-0001", "user_id"),
}


@pytest.fixture
async def database(each_dbs) -> AsyncIterator[tuple[str, str]]:
    """A fresh migrated database of each kind: (dialect, url)."""
    url = await each_dbs.fresh()
    yield each_dbs.kind, url
    await each_dbs.drop(url)


async def store_through_the_api(url: str, kind: str) -> None:
    settings = make_settings(url)
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            admin = issue_token(settings, sub="admin-test", role=Role.ADMIN)
            result = await logged(GraphQLClient(http, lambda *_: admin), admin, kind, [FACTORIES[kind](1)])
            assert result["statuses"] == ["ACCEPTED"]
    finally:
        await app.state.db.dispose()


async def rows_of(engine: AsyncEngine, table: str) -> list[Any]:
    async with engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(f"SELECT * FROM {table} ORDER BY seq"))).all()]


async def columns_of(engine: AsyncEngine, table: str) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(f"SELECT * FROM {table} WHERE 1 = 0"))).keys())


def attempts(
    dialect: str, table: str, key: str, value: str, column: str, columns: list[str]
) -> dict[str, str]:
    """Every way we know to change or remove the stored row, by name."""
    row = f"FROM {table} WHERE {key} = '{value}'"
    # the stored row with another user, under its own seq or under a new one
    changed = ", ".join(f"'u_intruder' AS {c}" if c == column else c for c in columns)
    unsequenced = [c for c in columns if c != "seq"]
    changed_new_seq = ", ".join(f"'u_intruder' AS {c}" if c == column else c for c in unsequenced)
    tries = {
        "update": f"UPDATE {table} SET {column} = 'u_intruder' WHERE {key} = '{value}'",
        "update all": f"UPDATE {table} SET content_hash = 'x'",
        "delete": f"DELETE {row}",
        "delete all": f"DELETE FROM {table}",
        "insert on conflict do update": (
            f"INSERT INTO {table} SELECT * {row} ON CONFLICT ({key}) DO UPDATE SET {column} = 'u_intruder'"
        ),
    }
    if dialect == "sqlite":
        tries |= {
            "insert or replace": f"INSERT OR REPLACE INTO {table} SELECT {changed} {row}",
            "insert or replace, new seq": (
                f"INSERT OR REPLACE INTO {table} ({', '.join(unsequenced)}) SELECT {changed_new_seq} {row}"
            ),
            "replace": f"REPLACE INTO {table} SELECT {changed} {row}",
        }
    else:
        tries |= {"truncate": f"TRUNCATE {table}", "truncate cascade": f"TRUNCATE {table} CASCADE"}
    return tries


@pytest.mark.parametrize("kind", list(TABLES))
async def test_stored_rows_cannot_be_changed_or_removed_in_sql(database, kind):
    # given: one record stored through the API
    dialect, url = database
    table, key, value, column = TABLES[kind]
    await store_through_the_api(url, kind)
    engine = create_async_engine(url)
    outcomes: dict[str, str] = {}
    try:
        before = await rows_of(engine, table)
        assert len(before) == 1
        columns = await columns_of(engine, table)
        for name, sql in attempts(dialect, table, key, value, column, columns).items():
            # when: each attempt in its own transaction
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(sql))
                outcomes[name] = "no effect"
            except DBAPIError as error:
                outcomes[name] = "refused"
                assert "append-only" in str(error.orig), error
            # then: after every attempt the row is exactly as stored
            assert await rows_of(engine, table) == before, name
    finally:
        await engine.dispose()
    # and: edits and removals are refused loudly; SQLite ignores inserts that would overwrite
    refused = {"update", "update all", "delete", "delete all"}
    if dialect == "postgresql":
        refused |= {"truncate", "truncate cascade", "insert on conflict do update"}
    assert {name for name, outcome in outcomes.items() if outcome == "refused"} == refused
