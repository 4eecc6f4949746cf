"""The live deriver's watermark and lock, straight against the database.

On PostgreSQL a transaction holding a lower seq can commit after one holding a higher seq;
the deriver must apply each record once, whenever its transaction commits. One fold runs at
a time, and a fold that dies takes nothing with it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth import Principal, Role
from app.services.analytics import build_snapshots, live
from app.services.analytics.tables import EVENTS
from app.services.audit import AuditLog
from persistence.db import Database
from persistence.models import LIVE_PATH_DAY, LIVE_STATE, LIVE_USER_DAY
from tests.conftest import RUN_ON, TEST_AUDIT_SECRET

THRESHOLD = 0.7
NOW = datetime.now(UTC)
postgres_only = pytest.mark.skipif(
    RUN_ON != "postgresql", reason="SQLite has one writer: seq order is commit order there"
)


def event_row(user: str, event_type: str = "login") -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "ts": NOW,
        "day": NOW.date(),
        "user_id": user,
        "event_type": event_type,
        "module_id": None,
        "quiz_id": None,
        "scenario_id": None,
        "turn_index": None,
        "action": None,
        "module_version": "m1",
        "scenario_version": "s1",
        "prompt_version": "p1",
        "region_id": "r1",
        "country_id": "c1",
        "branch_id": "b1",
        "team_id": "t1",
        "received_at": NOW,
        "sent_by": "test",
        "content_hash": "0" * 64,
    }


async def logins(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = (await session.execute(sa.select(LIVE_USER_DAY.c.user_id, LIVE_USER_DAY.c.logins))).all()
    return {user: n for user, n in rows}


async def path_users(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(sa.select(sa.func.sum(LIVE_PATH_DAY.c.active_users))) or 0)


async def test_each_committed_record_is_folded_once(db):
    # given: two logins committed
    async with db.transaction() as session:
        await session.execute(sa.insert(EVENTS), [event_row("u1"), event_row("u2")])
    # when: folded, then folded again with nothing new, then one more record and a fold
    first = await live.fold_now(db, threshold=THRESHOLD)
    again = await live.fold_now(db, threshold=THRESHOLD)
    async with db.transaction() as session:
        await session.execute(sa.insert(EVENTS), [event_row("u1")])
    third = await live.fold_now(db, threshold=THRESHOLD)
    # then
    assert first is not None and first.records == 2
    assert again is None  # nothing pending: no fold at all
    assert third is not None and third.records == 1
    assert await logins(db) == {"u1": 2, "u2": 1}
    assert await path_users(db) == 2
    async with db.session() as session:
        state = (await session.execute(sa.select(LIVE_STATE))).mappings().one()
    assert state["records"] == 3 and state["folds"] == 2


@postgres_only
async def test_a_lower_seq_committed_after_a_higher_one_is_not_skipped(db):
    # given: transaction A inserts first (lower seq) but stays open; B inserts and commits
    async with db.engine.connect() as a, db.engine.connect() as b:
        await a.begin()
        early = await a.scalar(sa.insert(EVENTS).values(event_row("early")).returning(EVENTS.c.seq))
        await b.begin()
        late = await b.scalar(sa.insert(EVENTS).values(event_row("late")).returning(EVENTS.c.seq))
        await b.commit()
        # when: a fold runs while A is still open, then A commits and another fold runs
        while_open = await live.fold_now(db, threshold=THRESHOLD)
        folded_while_open = await logins(db)
        await a.commit()
    after_commit = await live.fold_now(db, threshold=THRESHOLD)
    once_more = await live.fold_now(db, threshold=THRESHOLD)
    # then: B's record first, A's when it committed, each exactly once
    assert late > early
    assert while_open is not None and while_open.records == 1
    assert folded_while_open == {"late": 1}
    assert after_commit is not None and after_commit.records == 1
    assert once_more is None
    assert await logins(db) == {"early": 1, "late": 1}


@postgres_only
async def test_one_fold_at_a_time_and_a_dead_one_loses_nothing(db):
    # given: records, and a fold in progress in another transaction (another instance)
    async with db.transaction() as session:
        await session.execute(sa.insert(EVENTS), [event_row("u1"), event_row("u2")])
    async with db.sessionmaker() as holder:
        await holder.begin()
        in_progress = await live.fold(holder, threshold=THRESHOLD, holder="instance-a")
        # when: another deriver tries meanwhile
        busy = await live.fold_now(db, threshold=THRESHOLD, wait=False)
        # and the first one dies before committing
        await holder.rollback()
    taken_over = await live.fold_now(db, threshold=THRESHOLD, wait=False)
    # then: the second skipped while the first held the lock; after the death it folded
    # everything, once
    assert in_progress is not None and in_progress.records == 2
    assert busy is None
    assert taken_over is not None and taken_over.records == 2
    assert await logins(db) == {"u1": 1, "u2": 1}


async def test_the_deriver_loop_folds_in_the_background_and_reports_its_lag(db):
    # given: a running deriver
    deriver = live.LiveDeriver(db, THRESHOLD, interval=0.05)
    deriver.start()
    try:
        # when: a record is committed
        async with db.transaction() as session:
            await session.execute(sa.insert(EVENTS), [event_row("u9")])
        for _ in range(200):
            if await logins(db):
                break
            await asyncio.sleep(0.05)
    finally:
        await deriver.stop()
    # then
    assert await logins(db) == {"u9": 1}
    assert deriver.lag_seconds is not None and deriver.lag_seconds >= 0
    assert live.latest_lag_seconds() is not None


async def test_builds_mark_the_earliest_built_day_whose_later_xp_bases_are_due(db):
    # given: nothing marked; then builds of 2026-03-05, 2026-03-02 and 2026-03-09, in that order
    days = [datetime(2026, 3, d, tzinfo=UTC).date() for d in (5, 2, 9)]
    marked = []
    for day in days:
        async with db.transaction() as session:
            await live.mark_bases(session, day)
        async with db.session() as session:
            due = await session.scalar(
                sa.select(LIVE_STATE.c.event_seq).where(LIVE_STATE.c.name == live.BASES)
            )
            marked.append(datetime.fromordinal(int(due)).date())
        async with db.session() as session:
            current = [await live.bases_current(session, d) for d in (days[1], days[0], days[2])]
    # then: the earliest day stays marked; the bases of that day and before are current, later not
    assert marked == [days[0], days[1], days[1]]
    assert current == [True, False, False]


@pytest.mark.skipif(RUN_ON == "postgresql", reason="SQLite's single writer and its write lock")
async def test_on_sqlite_a_fold_is_a_writer_unit_so_writes_never_find_the_database_locked(db):
    # given: writes through the group-commit writer, sent while folds run, round after round
    async def write(user: str, after: float) -> None:
        await asyncio.sleep(after)  # spread over the fold's run
        await db.writer.run(lambda conn: conn.execute(sa.insert(EVENTS), [event_row(user)]))

    # when
    for round_ in range(20):
        await asyncio.gather(
            live.fold_now(db, threshold=THRESHOLD),
            *(write(f"u{round_}-{n}", n / 1000) for n in range(10)),
        )
    await live.fold_now(db, threshold=THRESHOLD)
    # then: no write batch waited for a fold's lock (a fold on a connection of its own held it
    # across its statements), and every record was folded once
    assert db.writer.waited == 0
    assert await logins(db) == {f"u{r}-{n}": 1 for r in range(20) for n in range(10)}


@pytest.mark.skipif(RUN_ON == "postgresql", reason="SQLite's single writer and its write lock")
async def test_on_sqlite_a_build_is_a_writer_unit_so_writes_never_find_the_database_locked(db):
    # given: a day with records, and writes sent while it is built, then rebuilt, round after round
    await db.writer.run(
        lambda conn: conn.execute(sa.insert(EVENTS), [event_row(f"s{n}") for n in range(200)])
    )
    audit, admin = AuditLog(TEST_AUDIT_SECRET), Principal(sub="builder", role=Role.ADMIN)

    async def build(rebuild: bool) -> int:
        built = await build_snapshots(
            db, audit, admin, NOW.date(), rebuild=rebuild, quiz_pass_threshold=THRESHOLD, request_id="r"
        )
        return built.snapshots

    async def write(user: str, after: float) -> None:
        await asyncio.sleep(after)  # spread over the build's run
        await db.writer.run(lambda conn: conn.execute(sa.insert(EVENTS), [event_row(user)]))

    # when
    for round_ in range(10):
        await asyncio.gather(
            build(rebuild=round_ > 0), *(write(f"u{round_}-{n}", n / 1000) for n in range(10))
        )
    snapshots = await build(rebuild=True)
    # then: no write batch waited for a build's lock (a build on a connection of its own held it
    # across its statements), and the last rebuild counts every user once
    assert db.writer.waited == 0
    assert snapshots == 200 + 10 * 10


@postgres_only
async def test_on_postgresql_the_counters_leave_room_on_their_pages_for_in_place_updates(db):
    # given: the migrated database
    # when
    async with db.session() as session:
        options = dict(
            (
                await session.execute(
                    sa.text("SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'live_%'")
                )
            ).all()
        )
    # then: the counters a fold updates in place have room for heap-only updates (no index entry)
    assert options["live_user_day"] == ["fillfactor=70"]
    assert options["live_path_day"] == ["fillfactor=50"]
