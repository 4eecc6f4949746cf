"""Group commit: shared transactions, isolated failures, durable answers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from app.settings import Settings
from persistence.db import Database

UPSERT = {
    "sqlite": "INSERT INTO users VALUES (:id, 'n', 'r', 'c', 'b', 't', :now, :now)",
    "postgresql": "INSERT INTO users VALUES (:id, 'n', 'r', 'c', 'b', 't', now(), now())",
}


@pytest.fixture
async def db(database_url):
    database = Database(Settings(database_url=database_url))
    yield database
    await database.dispose()


def insert_user(db, user_id):
    async def unit(conn):
        await conn.execute(text(UPSERT[db.dialect]), {"id": user_id, "now": "2026-01-01 00:00:00"})
        return user_id

    return unit


async def count_users(db):
    async with db.engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()


async def test_concurrent_units_share_commits_and_all_land(db):
    # when: 200 concurrent writers
    results = await asyncio.gather(*(db.writer.run(insert_user(db, f"u{i}")) for i in range(200)))
    # then: each got its own answer, all rows are there, in fewer transactions than units
    assert results == [f"u{i}" for i in range(200)]
    assert await count_users(db) == 200
    assert db.writer.units == 200
    assert db.writer.batches < 200


async def test_a_failing_unit_rolls_back_alone(db):
    # given: the second unit inserts a duplicate key after a good insert of its own
    async def bad(conn):
        await conn.execute(text(UPSERT[db.dialect]), {"id": "u_bad_1", "now": "2026-01-01 00:00:00"})
        await conn.execute(text(UPSERT[db.dialect]), {"id": "u_ok_1", "now": "2026-01-01 00:00:00"})

    # when
    outcomes = await asyncio.gather(
        db.writer.run(insert_user(db, "u_ok_1")),
        db.writer.run(bad),
        db.writer.run(insert_user(db, "u_ok_2")),
        return_exceptions=True,
    )
    # then
    assert outcomes[0] == "u_ok_1" and outcomes[2] == "u_ok_2"
    assert isinstance(outcomes[1], Exception)
    async with db.engine.connect() as conn:
        ids = (await conn.execute(text("SELECT user_id FROM users ORDER BY user_id"))).scalars().all()
    assert ids == ["u_ok_1", "u_ok_2"]


async def test_answers_come_after_the_commit(db):
    # when
    await db.writer.run(insert_user(db, "u_durable"))
    # then: a separate connection already sees it
    other = Database(Settings(database_url=str(db.settings.database_url)))
    try:
        async with other.engine.connect() as conn:
            query = text("SELECT count(*) FROM users WHERE user_id = 'u_durable'")
            found = (await conn.execute(query)).scalar_one()
        assert found == 1
    finally:
        await other.dispose()
