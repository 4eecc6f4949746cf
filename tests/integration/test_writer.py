"""Group commit: shared transactions, isolated failures, durable answers."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from app.settings import Settings
from persistence.db import Database

UPSERT = {
    "sqlite": "INSERT INTO users VALUES (:id, 'n', 'r', 'c', 'b', 't', :now, :now)",
    "postgresql": "INSERT INTO users VALUES (:id, 'n', 'r', 'c', 'b', 't', now(), now())",
}


def insert_user(db, user_id):
    def unit(conn):
        conn.execute(text(UPSERT[db.dialect]), {"id": user_id, "now": "2026-01-01 00:00:00"})
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
    def bad(conn):
        conn.execute(text(UPSERT[db.dialect]), {"id": "u_bad_1", "now": "2026-01-01 00:00:00"})
        conn.execute(text(UPSERT[db.dialect]), {"id": "u_ok_1", "now": "2026-01-01 00:00:00"})

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


INSERT_MANY = {
    "sqlite": "INSERT INTO users VALUES (:id, 'n', 'r', 'c', 'b', 't', '2026-01-01', '2026-01-01')",
    "postgresql": "INSERT INTO users VALUES (:id, 'n', 'r', 'c', 'b', 't', now(), now())",
}


def merged_inserts(db, calls):
    def merge(conn, user_ids):
        calls.append(len(user_ids))
        conn.execute(text(INSERT_MANY[db.dialect]), [{"id": user_id} for user_id in user_ids])
        return [f"merged:{user_id}" for user_id in user_ids]

    return merge


async def test_units_of_one_kind_run_as_one_merged_call(db):
    # given
    calls: list[int] = []
    merge = merged_inserts(db, calls)
    # when
    results = await asyncio.gather(
        *(db.writer.run(insert_user(db, f"m{i}"), merge=merge, item=f"m{i}") for i in range(100))
    )
    # then: every caller got its own result, in order, from fewer merged calls than units
    assert results == [f"merged:m{i}" for i in range(100)]
    assert await count_users(db) == 100
    assert sum(calls) == 100 and len(calls) < 100


def recorded_statements(db):
    """The SQL the writer's engine sends, as it goes."""
    writer = db.writer
    engine = writer.sync_engine if writer.sync_engine is not None else writer.async_engine.sync_engine
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    return statements


async def test_a_batch_in_which_nothing_fails_takes_no_savepoints(db):
    # given
    statements = recorded_statements(db)
    merge = merged_inserts(db, [])
    # when
    results = await asyncio.gather(
        *(db.writer.run(insert_user(db, f"s{i}"), merge=merge, item=f"s{i}") for i in range(20)),
        db.writer.run(insert_user(db, "alone")),
    )
    # then
    assert results[-1] == "alone" and await count_users(db) == 21
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]


async def test_a_merged_group_that_fails_runs_unit_by_unit(db):
    # given: one unit of the group collides with a stored row
    await db.writer.run(insert_user(db, "taken"))
    calls: list[int] = []
    merge = merged_inserts(db, calls)
    ids = ["a1", "a2", "taken", "a3"]
    # when
    outcomes = await asyncio.gather(
        *(db.writer.run(insert_user(db, i), merge=merge, item=i) for i in ids), return_exceptions=True
    )
    # then: the merged call failed as a whole, so the batch ran again with each unit on its
    # own (not merged again), in savepoints: the culprit is refused, the others stored
    assert calls == [4]
    assert isinstance(outcomes[2], Exception)
    assert [outcomes[0], outcomes[1], outcomes[3]] == ["a1", "a2", "a3"]
    assert await count_users(db) == 4


async def test_a_locked_database_is_waited_for_off_the_event_loop(db, database_url):
    """SQLite batches run on the event loop only while nobody else holds the write lock."""
    if db.dialect != "sqlite":
        pytest.skip("the SQLite writer's lock handling")
    # given: another connection holds the database's write lock
    other = sqlite3.connect(str(make_url(database_url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        # when: a unit arrives
        pending = asyncio.ensure_future(db.writer.run(insert_user(db, "u_waited")))
        # then: it waits, and the event loop keeps serving meanwhile
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not pending.done()
        assert db.writer.waited == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    # and once the lock is gone it is written
    assert await asyncio.wait_for(pending, 5) == "u_waited"
    assert await count_users(db) == 1
    # the next batch, with nobody in the way, runs on the event loop again
    await db.writer.run(insert_user(db, "u_next"))
    assert db.writer.waited == 1
