"""Prepared statements store exactly what SQLAlchemy Core would store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from persistence.db import Database
from persistence.models import SessionLogRow
from persistence.models.upm import UpmLogRow
from persistence.prepared import Prepared

SESSIONS = SessionLogRow.__table__  # type: ignore[attr-defined]
LOG = UpmLogRow.__table__  # type: ignore[attr-defined]
AT = datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=UTC)
# Instants whose text is easy to get wrong: no microseconds, another offset, an early year, naive.
INSTANTS = [
    AT,
    datetime(2026, 11, 21, 9, 30, 15, tzinfo=UTC),
    datetime(2026, 11, 21, 18, 30, 15, 5, tzinfo=timezone(timedelta(hours=9))),
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2026, 11, 21, 9, 30),
]


def session_row(session_id: str, at: datetime = AT) -> dict[str, object]:
    return {
        "session_id": session_id,
        "user_id": "u_1",
        "engine": "quiz",
        "start_time": at,
        "end_time": at,
        "day": at.date(),
        "duration_sec": 12.5,
        "outcome": None,
        "turn_count": 3,
        "correct_answers": 2,
        "upsell_attempts": None,
        "upsell_success": True,
        "module_version": "m1",
        "scenario_version": None,
        "prompt_version": None,
        "region_id": "r",
        "country_id": "c",
        "branch_id": "b",
        "team_id": "t",
        "received_at": at,
        "sent_by": "engine-test",
        "content_hash": "0" * 64,
    }


def log_row(log_id: str, at: datetime = AT) -> dict[str, object]:
    return {
        "log_id": log_id,
        "kind": "quiz",
        "user_id": "u_1",
        "payload_hash": "1" * 64,
        "answer": {"recordId": "r", "skillDeltas": {"upsell": 0.01}, "none": None},
        "created_at": at,
    }


async def stored(db: Database, table: str, key: str, value: str) -> tuple[object, ...]:
    """The row as the database holds it, every column as text."""
    async with db.engine.connect() as conn:
        columns = [c.name for c in (SESSIONS if table == "session_log" else LOG).columns if c.name != "seq"]
        casts = ", ".join(f"CAST({name} AS TEXT)" for name in columns if name != key)
        row = (await conn.execute(text(f"SELECT {casts} FROM {table} WHERE {key} = :v"), {"v": value})).one()
    return tuple(row)


@pytest.mark.parametrize("at", INSTANTS, ids=str)
@pytest.mark.parametrize(
    ("table", "key", "make"), [(SESSIONS, "session_id", session_row), (LOG, "log_id", log_row)]
)
async def test_a_prepared_insert_stores_what_core_stores(db, table, key, make, at):
    # given
    prepared = Prepared.insert(table)

    def write(conn):
        conn.execute(table.insert(), [make("core", at)])
        prepared(conn, [make("prepared", at)])

    # when: both through the writer's connection (the direct driver path on SQLite)
    await db.writer.run(write)
    # then: every column is stored alike
    assert await stored(db, table.name, key, "prepared") == await stored(db, table.name, key, "core")


async def test_a_prepared_insert_needs_every_column(db):
    # given: a row without one of the table's columns
    row = session_row("s_missing")
    del row["outcome"]
    # when / then: refused, not stored with a silent default
    with pytest.raises(Exception, match="outcome"):
        await db.writer.run(lambda conn: Prepared.insert(SESSIONS)(conn, [row]))


async def test_rows_of_one_instant_in_other_zones_keep_their_own_local_times(db):
    # given: rows in one batch whose times are one instant spelt in other zones, then naive,
    # one after another (the prepared text of a time is kept for the next equal one)
    tokyo = AT.astimezone(timezone(timedelta(hours=9)))
    spellings = [AT, tokyo, AT.replace(tzinfo=None), tokyo, AT]

    def rows(prefix: str) -> list[dict[str, object]]:
        made = []
        for n, at in enumerate(spellings):
            row = session_row(f"{prefix}-{n}", at)
            row["end_time"] = spellings[(n + 1) % len(spellings)]
            made.append(row)
        return made

    def write(conn):
        conn.execute(SESSIONS.insert(), rows("core"))
        Prepared.insert(SESSIONS)(conn, rows("prepared"))

    # when
    await db.writer.run(write)
    # then: each row's times are stored as Core stores them (Tokyo's 18:30, not UTC's 09:30)
    for n in range(len(spellings)):
        core = await stored(db, SESSIONS.name, "session_id", f"core-{n}")
        assert await stored(db, SESSIONS.name, "session_id", f"prepared-{n}") == core
