"""Derive benchmark: buildSnapshots over a month of raw logs, beside a hand-written daily GROUP BY.

    python -m bench.derive                       # SQLite and PostgreSQL, 1,000,000 events each
    python -m bench.derive --db sqlite
    python -m bench.derive --db postgres --events 200000

For each database it makes a fresh one (a SQLite temp file; on PostgreSQL a new
database, dropped at the end), migrates it, and writes straight into the raw
tables (Core executemany on SQLite, COPY on PostgreSQL): ``--events`` events
over ``--days`` UTC days for 10,000 users in 1,000 teams, 200 branches, 20
countries and 5 regions, plus one session_log row per 10 events. Then, on the
same database in the same run:

(b) the baseline: a hand-written GROUP BY per day over event_log and
    session_log computing the same per-user counters, fetched (run once to warm
    the cache, then timed before and after (a); the faster run is the baseline);
(a) ``buildSnapshots`` for every day, through the GraphQL mutation in-process
    (the app over ASGI: the server's own code path, one request per day):
    snapshots, the four aggregates from the snapshots and the consistency check;
(c) one more day of the same volume built alone after the month, and one at a
    tenth of the volume: the cost follows that day's records, not the history;
(d) a hand-written GROUP BY per day over the three raw logs that stores the same
    snapshot rows (``bench.floor``: every column, the cumulative xpTotal and
    badgesOwned from the user's previous row) into a copy of snapshot_daily_user
    (same columns and indexes) that grows day by day, committing each day; timed
    before and after (a), the faster counts; its rows are checked equal to (a)'s.
    (d0), the earlier floor, for the record: (b) with its event rows only written
    into snapshot_daily_user and rolled back.

The live deriver folds the month into its counters first (timed, for the record), so
(a) finalises each day from the counters (target (a) <= 1.0 x (d), both storing the
same rows and committing them); (e) then rebuilds
every day from its raw logs (rebuild: true, checked against the counters).

    python -m bench.derive --live 60             # instead: freshness and ingest, deriver on/off

It prints the timings, (a) / (b) (target <= 1.5) and the peak RSS of the
process (the app runs in it) during each phase. Run on demand; it is not part of
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.auth import Role, issue_token
from app.main import create_app
from app.services.analytics import live
from app.services.analytics.tables import EVENTS, SESSIONS
from app.settings import Settings
from bench import floor
from persistence.db import Database
from persistence.migrate import migrate

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
FIRST_DAY = date(2026, 1, 1)
REGIONS, COUNTRIES, BRANCHES, TEAMS, USERS = 5, 20, 200, 1000, 10_000
# Event mix (per 100 events) and the reward split: roughly a trainer's day.
EVENT_MIX = (
    ("login", 15),
    ("module_start", 15),
    ("module_complete", 12),
    ("quiz_answer", 20),
    ("saleslab_turn", 25),
    ("reward_claim", 13),
)
SESSIONS_PER_EVENT = 0.1
BUILD = (
    "mutation($date: Date!, $rebuild: Boolean! = false) "
    "{ buildSnapshots(date: $date, rebuild: $rebuild) { snapshots teams } }"
)

BASELINE_EVENTS = sa.text(
    """
    SELECT user_id,
           SUM(CASE WHEN event_type = 'module_start' THEN 1 ELSE 0 END),
           SUM(CASE WHEN event_type = 'module_complete' THEN 1 ELSE 0 END),
           MAX(CASE WHEN event_type = 'login' THEN 1 ELSE 0 END),
           SUM(CASE WHEN event_type = 'reward_claim' AND action LIKE 'xp:%'
                    THEN CAST(SUBSTR(action, 4) AS INTEGER) ELSE 0 END)
    FROM event_log WHERE day = :day GROUP BY user_id
    """
)
BASELINE_SESSIONS = sa.text(
    """
    SELECT user_id,
           SUM(CASE WHEN engine = 'quiz' THEN 1 ELSE 0 END),
           SUM(CASE WHEN engine = 'quiz' AND turn_count > 0
                     AND CAST(correct_answers AS FLOAT) / turn_count >= 0.7 THEN 1 ELSE 0 END),
           SUM(CASE WHEN engine = 'saleslab' THEN 1 ELSE 0 END),
           SUM(CASE WHEN engine = 'saleslab' AND upsell_attempts > 0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN engine = 'saleslab' AND upsell_success THEN 1 ELSE 0 END)
    FROM session_log WHERE day = :day GROUP BY user_id
    """
)
# (d0), the earlier floor: the baseline, except that its per-user event rows are written into
# snapshot_daily_user (rolled back) instead of fetched. Not the same rows (event counters only,
# constants for the rest) and never committed; kept for comparison with earlier runs.
FLOOR_EVENTS = sa.text(
    """
    INSERT INTO snapshot_daily_user (day, user_id, logged_in, module_started, module_completed,
        quiz_completed, quiz_passed, saleslab_sessions, upsell_attempts, upsell_successes,
        xp_gained, xp_total, badges_owned, latest_at, latest_module_version,
        latest_scenario_version, latest_prompt_version, region_id, country_id, branch_id, team_id)
    SELECT day, user_id,
           MAX(CASE WHEN event_type = 'login' THEN 1 ELSE 0 END) = 1,
           SUM(CASE WHEN event_type = 'module_start' THEN 1 ELSE 0 END),
           SUM(CASE WHEN event_type = 'module_complete' THEN 1 ELSE 0 END),
           0, 0, 0, 0, 0,
           SUM(CASE WHEN event_type = 'reward_claim' AND action LIKE 'xp:%'
                    THEN CAST(SUBSTR(action, 4) AS INTEGER) ELSE 0 END),
           0, '[]', MAX(ts), NULL, NULL, NULL,
           MAX(region_id), MAX(country_id), MAX(branch_id), MAX(team_id)
    FROM event_log WHERE day = :day GROUP BY day, user_id
    """
)


@dataclass
class Org:
    """10 users per team, 5 teams per branch, 10 branches per country, 4 countries per region."""

    scopes: list[tuple[str, str, str, str]] = field(default_factory=list)

    @classmethod
    def build(cls) -> Org:
        org = cls()
        for u in range(USERS):
            team = u // (USERS // TEAMS)
            branch = team // (TEAMS // BRANCHES)
            country = branch // (BRANCHES // COUNTRIES)
            region = country // (COUNTRIES // REGIONS)
            org.scopes.append((f"r{region:02d}", f"c{country:03d}", f"b{branch:04d}", f"t{team:05d}"))
        return org


def day_rows(
    org: Org, day: date, events: int, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One UTC day of raw rows, shaped as the ingestion stores them."""
    types = [name for name, weight in EVENT_MIX for _ in range(weight)]
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    versions = [("m1.0", "s1.0", "p1.0"), ("m1.1", "s1.0", "p1.0"), ("m1.1", "s2.0", "p2.0")]
    event_rows: list[dict[str, Any]] = []
    for _ in range(events):
        user = rng.randrange(USERS)
        region, country, branch, team = org.scopes[user]
        event_type = rng.choice(types)
        action = None
        if event_type == "reward_claim":
            action = f"badge:b{rng.randrange(50)}" if rng.random() < 0.05 else f"xp:{rng.randrange(5, 200)}"
        ts = start + timedelta(seconds=rng.randrange(86_400))
        module, scenario, prompt = rng.choice(versions)
        event_rows.append(
            {
                "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "ts": ts,
                "day": day,
                "user_id": f"u{user:05d}",
                "event_type": event_type,
                "module_id": None,
                "quiz_id": None,
                "scenario_id": None,
                "turn_index": None,
                "action": action,
                "module_version": module,
                "scenario_version": scenario,
                "prompt_version": prompt,
                "region_id": region,
                "country_id": country,
                "branch_id": branch,
                "team_id": team,
                "received_at": ts,
                "sent_by": "bench",
                "content_hash": "0" * 64,
            }
        )
    session_rows: list[dict[str, Any]] = []
    for _ in range(int(events * SESSIONS_PER_EVENT)):
        user = rng.randrange(USERS)
        region, country, branch, team = org.scopes[user]
        engine = rng.choices(("quiz", "saleslab", "learning"), (5, 4, 1))[0]
        end = start + timedelta(seconds=rng.randrange(600, 86_400))
        turns = rng.randrange(0, 12)
        attempts = rng.randrange(0, 3) if engine == "saleslab" else None
        module, scenario, prompt = rng.choice(versions)
        session_rows.append(
            {
                "session_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "user_id": f"u{user:05d}",
                "engine": engine,
                "start_time": end - timedelta(seconds=600),
                "end_time": end,
                "day": day,
                "duration_sec": 600.0,
                "outcome": "success",
                "turn_count": turns,
                "correct_answers": rng.randrange(0, turns + 1) if engine == "quiz" else None,
                "upsell_attempts": attempts,
                "upsell_success": (rng.random() < 0.4) if attempts else None,
                "module_version": module,
                "scenario_version": scenario,
                "prompt_version": prompt,
                "region_id": region,
                "country_id": country,
                "branch_id": branch,
                "team_id": team,
                "received_at": end,
                "sent_by": "bench",
                "content_hash": "0" * 64,
            }
        )
    return event_rows, session_rows


class PeakRss:
    """Samples this process's RSS every 20 ms; ``phase`` reports the peak inside a block."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    @contextmanager
    def phase(self, into: dict[str, float], name: str) -> Iterator[None]:
        self.peak = self.process.memory_info().rss
        yield
        time.sleep(0.05)
        into[name] = self.peak / 2**20

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


async def load(db: Database, dialect: str, rows: list[dict[str, Any]], table: sa.Table) -> None:
    if not rows:
        return
    if dialect == "postgresql":
        url = make_url(db.settings.database_url).set(drivername="postgresql")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            columns = list(rows[0])
            await conn.copy_records_to_table(
                table.name, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
            )
        finally:
            await conn.close()
        return
    async with db.engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            await conn.execute(sa.insert(table), rows[start : start + 10_000])


async def baseline(db: Database, days: list[date]) -> float:
    """The hand-written daily GROUP BY of the same counters, fetched; seconds."""
    start = time.perf_counter()
    async with db.engine.connect() as conn:
        for day in days:
            (await conn.execute(BASELINE_EVENTS, {"day": day})).all()
            (await conn.execute(BASELINE_SESSIONS, {"day": day})).all()
    return time.perf_counter() - start


async def store_floor(db: Database, days: list[date], threshold: float) -> float:
    """(d): the hand-written GROUP BY storing each day's snapshot rows, committed; seconds."""
    async with db.engine.begin() as conn:
        await conn.run_sync(floor.create_table)
    insert = floor.POSTGRES if db.dialect == "postgresql" else floor.SQLITE
    start = time.perf_counter()
    for day in days:
        async with db.engine.begin() as conn:
            await conn.execute(insert, {"day": day, "threshold": threshold})
    return time.perf_counter() - start


async def floor_differences(db: Database) -> int:
    """Rows of (d) and of (a) that are not in the other (0: they stored the same rows)."""
    async with db.engine.connect() as conn:
        return int(await conn.scalar(sa.text(floor.differences())) or 0)


async def write_floor(db: Database, days: list[date]) -> float:
    """(d0): the baseline with its event rows written into the snapshot table, rolled back; seconds."""
    elapsed = 0.0
    for day in days:
        async with db.engine.connect() as conn:
            # after (a): the day's built snapshots out of the way first (untimed; rolled back too)
            await conn.execute(sa.text("DELETE FROM snapshot_daily_user WHERE day = :day"), {"day": day})
            start = time.perf_counter()
            await conn.execute(FLOOR_EVENTS, {"day": day})
            (await conn.execute(BASELINE_SESSIONS, {"day": day})).all()
            elapsed += time.perf_counter() - start
            await conn.rollback()
    if db.dialect == "postgresql":
        # PostgreSQL keeps the rolled-back rows as dead tuples in the table and its indexes, which
        # (a)'s inserts and probes would wade through: gone before anything else is timed.
        async with db.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(sa.text("VACUUM ANALYZE snapshot_daily_user"))
    return elapsed


class StatementTimes:
    """Time spent in the database per kind of statement (the first words of its SQL)."""

    def __init__(self, db: Database) -> None:
        # on SQLite a build runs on the group-commit writer's engine
        self.engines = [db.engine.sync_engine, *([db.writer.sync_engine] if db.writer.sync_engine else [])]
        self.totals: dict[str, float] = {}
        self._started = 0.0

    def _before(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        kind = " ".join(words[:3]) if words[0] in ("INSERT", "DELETE", "UPDATE") else words[0]
        self.totals[kind] = self.totals.get(kind, 0.0) + time.perf_counter() - self._started

    @contextmanager
    def recording(self) -> Iterator[None]:
        for engine in self.engines:
            sa.event.listen(engine, "before_cursor_execute", self._before)
            sa.event.listen(engine, "after_cursor_execute", self._after)
        try:
            yield
        finally:
            for engine in self.engines:
                sa.event.remove(engine, "before_cursor_execute", self._before)
                sa.event.remove(engine, "after_cursor_execute", self._after)


async def build_days(
    client: httpx.AsyncClient, token: str, days: list[date], rebuild: bool = False
) -> tuple[float, int]:
    start = time.perf_counter()
    snapshots = 0
    for day in days:
        response = await client.post(
            "/graphql",
            json={"query": BUILD, "variables": {"date": day.isoformat(), "rebuild": rebuild}},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        assert "errors" not in body, body
        snapshots += body["data"]["buildSnapshots"]["snapshots"]
    return time.perf_counter() - start, snapshots


async def run(kind: str, events: int, days: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    org = Org.build()
    admin_url = os.environ.get("TRAINER_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL)
    name = f"bench_derive_{os.getpid()}"
    tmp = tempfile.TemporaryDirectory(prefix="bench-derive-")
    if kind == "postgres":
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = str(
            make_url(admin_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
        )
    else:
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'derive.db'}"
    settings = Settings(env="test", database_url=url, jwt_secret="bench-secret-" + "x" * 32)
    rss = PeakRss()
    memory: dict[str, float] = {}
    figures: dict[str, Any] = {"db": kind, "events": events, "days": days}
    try:
        await migrate(settings)
        db = Database(settings)
        month = [FIRST_DAY + timedelta(days=i) for i in range(days)]
        per_day = events // days
        start = time.perf_counter()
        with rss.phase(memory, "load"):
            sessions = 0
            for day in month:
                event_rows, session_rows = day_rows(org, day, per_day, rng)
                sessions += len(session_rows)
                await load(db, db.dialect, event_rows, EVENTS)
                await load(db, db.dialect, session_rows, SESSIONS)
            async with db.engine.begin() as conn:
                await conn.execute(sa.text("ANALYZE"))
        figures["load_s"] = time.perf_counter() - start
        figures["sessions"] = sessions

        await baseline(db, month)  # warm the cache
        figures["baseline_before_s"] = await baseline(db, month)
        figures["floor0_s"] = await write_floor(db, month)
        threshold = settings.quiz_pass_threshold
        figures["floor_s"] = await store_floor(db, month, threshold)

        # the deriver folds the month into the live counters (it would have, as the records came)
        start = time.perf_counter()
        await live.fold_now(db, threshold=settings.quiz_pass_threshold)
        figures["fold_s"] = time.perf_counter() - start

        app = create_app(settings)
        token = issue_token(settings, sub="bench", role=Role.ADMIN)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            times = StatementTimes(app.state.db)
            with rss.phase(memory, "build"), times.recording():
                figures["build_s"], figures["snapshots"] = await build_days(client, token, month)
            figures["statements_s"] = times.totals
            figures["baseline_after_s"] = await baseline(db, month)
            figures["floor0_after_s"] = await write_floor(db, month)
            figures["floor_after_s"] = await store_floor(db, month, threshold)
            figures["floor_differences"] = await floor_differences(db)
            # (e) the same days rebuilt from their raw logs (and checked against the counters)
            figures["rebuild_s"], _ = await build_days(client, token, month, rebuild=True)

            # (c) one more day of the same volume, then one at a tenth of it
            day31, day32 = FIRST_DAY + timedelta(days=days), FIRST_DAY + timedelta(days=days + 1)
            for day, volume in ((day31, per_day), (day32, per_day // 10)):
                event_rows, session_rows = day_rows(org, day, volume, rng)
                await load(db, db.dialect, event_rows, EVENTS)
                await load(db, db.dialect, session_rows, SESSIONS)
                await live.fold_now(db, threshold=settings.quiz_pass_threshold)
            with rss.phase(memory, "one_day"):
                figures["day31_s"], _ = await build_days(client, token, [day31])
            figures["day31_baseline_s"] = min([await baseline(db, [day31]) for _ in range(3)])
            figures["day32_s"], _ = await build_days(client, token, [day32])
            figures["day32_baseline_s"] = min([await baseline(db, [day32]) for _ in range(3)])
            figures["day31_events"], figures["day32_events"] = per_day, per_day // 10
        await app.state.db.dispose()
        await db.dispose()
    finally:
        rss.close()
        if kind == "postgres":
            admin = await asyncpg.connect(admin_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        tmp.cleanup()
    figures["baseline_s"] = min(figures["baseline_before_s"], figures["baseline_after_s"])
    figures["floor_s"] = min(figures["floor_s"], figures["floor_after_s"])
    figures["floor0_s"] = min(figures["floor0_s"], figures["floor0_after_s"])
    figures["ratio"] = figures["build_s"] / figures["baseline_s"]
    figures["rss_mib"] = memory
    return figures


def report(f: dict[str, Any]) -> None:
    per_day = f["build_s"] / f["days"]
    print(f"\n== {f['db']}: {f['events']:,} events + {f['sessions']:,} sessions over {f['days']} days")
    print(f"   load (straight into the raw tables): {f['load_s']:.1f} s")
    print(
        f"   (b) hand-written daily GROUP BY: {f['baseline_s']:.2f} s "
        f"(before (a): {f['baseline_before_s']:.2f} s, after: {f['baseline_after_s']:.2f} s)"
    )
    print(
        f"   (a) buildSnapshots x {f['days']}: {f['build_s']:.2f} s ({per_day * 1000:.0f} ms/day), "
        f"{f['snapshots']:,} snapshots"
    )
    print(f"   (a) / (b) = {f['ratio']:.2f}")
    same = "the same rows" if f["floor_differences"] == 0 else f"{f['floor_differences']:,} rows DIFFER"
    print(
        f"   (d) hand-written GROUP BY storing the day's snapshot rows (committed): {f['floor_s']:.2f} s "
        f"= {f['floor_s'] / f['baseline_s']:.2f} x (b); beside (a)'s snapshots: {same}"
    )
    print(
        f"   (d0) the earlier floor, (b) with its event rows written and rolled back: {f['floor0_s']:.2f} s; "
        f"(a) / (d0) = {f['build_s'] / f['floor0_s']:.2f}"
    )
    print(
        f"   (a) finalising from counters / (d) = {f['build_s'] / f['floor_s']:.2f} (target <= 1.0); "
        f"(e) rebuild from the raw logs (+ check against the counters): {f['rebuild_s']:.2f} s "
        f"= {f['rebuild_s'] / f['floor_s']:.2f} x (d); the deriver's one fold of the whole month: "
        f"{f['fold_s']:.2f} s"
    )
    print(
        f"   (c) day {f['days'] + 1} alone ({f['day31_events']:,} events): {f['day31_s'] * 1000:.0f} ms "
        f"(its GROUP BY: {f['day31_baseline_s'] * 1000:.0f} ms); "
        f"a day of {f['day32_events']:,} events: {f['day32_s'] * 1000:.0f} ms "
        f"(its GROUP BY: {f['day32_baseline_s'] * 1000:.0f} ms)"
    )
    breakdown = sorted(f["statements_s"].items(), key=lambda kv: -kv[1])
    in_sql = sum(seconds for _, seconds in breakdown)
    print(
        f"       in SQL {in_sql:.2f} s: "
        + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in breakdown[:6])
    )
    rss = f["rss_mib"]
    print(
        f"   peak RSS of the process (app in-process): load {rss['load']:.0f} MiB, "
        f"build {rss['build']:.0f} MiB, one day {rss['one_day']:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--live", type=float, metavar="SECONDS", help="instead: freshness and ingest with the deriver on/off"
    )
    args = parser.parse_args()
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    if args.live:
        for kind in kinds:
            live_report(asyncio.run(live_run(kind, args.live)))
        return
    print(
        f"cpus: {os.cpu_count()}, {REGIONS} regions / {COUNTRIES} countries / {BRANCHES} branches / "
        f"{TEAMS} teams / {USERS:,} users"
    )
    for kind in kinds:
        report(asyncio.run(run(kind, args.events, args.days, args.seed)))


# --- live: freshness and ingest with the deriver on and off -------------------------------------


async def _poll_state(url: str, seen: list[tuple[int, datetime]], stop: asyncio.Event) -> None:
    """Every 20 ms: the deriver's folded record count and the time of its latest fold."""
    db = Database(Settings(database_url=url))
    last = -1
    try:
        while not stop.is_set():
            async with db.engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.text("SELECT records, folded_at FROM live_state WHERE name = 'deriver'")
                    )
                ).one()
            records = int(row[0])
            if records != last and row[1] is not None:
                folded = row[1] if isinstance(row[1], datetime) else datetime.fromisoformat(row[1])
                seen.append((records, folded if folded.tzinfo else folded.replace(tzinfo=UTC)))
                last = records
            await asyncio.sleep(0.02)
    finally:
        await db.dispose()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def live_run(kind: str, seconds: float) -> dict[str, Any]:
    """bench.ingest's load (batches of 1,000 over HTTP, one at a time, full speed) for ``seconds``,
    into two servers, one with the deriver off and one with it on, and the same rows into a third
    database by Core executemany (the ceiling), round by round. Freshness: for each batch sent to
    the server with the deriver on, from its response (its COMMIT is just before) to the COMMIT of
    the fold that applied it (live_state.folded_at, polled every 20 ms)."""
    from bench import ingest

    dbs = ingest.Databases(kind, os.environ.get("TRAINER_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL))
    secret = "bench-secret-" + "y" * 32
    # an admin sends: an engine's aiCallsPerMinute (60 by default) would throttle a full-speed load
    token = issue_token(Settings(jwt_secret=secret), sub="bench-admin", role=Role.ADMIN, ttl_seconds=3600)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    figures: dict[str, Any] = {"db": kind}
    try:
        off_url, on_url, ceiling_url = [await dbs.fresh(label) for label in ("off", "on", "ceiling")]
        ceiling = ingest.Ceiling(ceiling_url)
        seen: list[tuple[int, datetime]] = []
        committed: list[tuple[int, datetime]] = []
        stop = asyncio.Event()
        os.environ["TRAINER_LIVE_DERIVE"] = "false"
        with ingest.server(off_url, secret) as (off_base, _):
            os.environ["TRAINER_LIVE_DERIVE"] = "true"
            with ingest.server(on_url, secret) as (on_base, _):
                poller = asyncio.create_task(_poll_state(on_url, seen, stop))
                async with (
                    httpx.AsyncClient(base_url=off_base, headers=headers, timeout=60) as off,
                    httpx.AsyncClient(base_url=on_base, headers=headers, timeout=60) as on,
                ):
                    times = {"off": 0.0, "on": 0.0, "ceiling": 0.0}
                    began, number, sent = time.monotonic(), 0, 0
                    while time.monotonic() - began < seconds:
                        events = ingest.make_events(ingest.BATCH, run=f"b{number}")
                        payload = ingest.body(events)
                        rows = ingest.server_rows(events, datetime.now(UTC))[0]
                        start = time.perf_counter()
                        await ingest.post(off, payload)
                        middle = time.perf_counter()
                        await ingest.post(on, payload)
                        done = time.perf_counter()
                        committed.append((sent + ingest.BATCH, datetime.now(UTC)))
                        sent += ingest.BATCH
                        direct = await ceiling.insert(rows)
                        if number:  # the first round warms up
                            times["off"] += middle - start
                            times["on"] += done - middle
                            times["ceiling"] += direct
                        number += 1
                    # the last batches' folds
                    deadline = time.monotonic() + 30
                    while (not seen or seen[-1][0] < sent) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a database
                        await asyncio.sleep(0.05)
                stop.set()
                await poller
        os.environ.pop("TRAINER_LIVE_DERIVE", None)
        await ceiling.db.dispose()
    finally:
        await dbs.drop_all()
    lags: list[tuple[float, float]] = []  # (seconds into the run, lag)
    first_commit = committed[0][1]
    for count, at in committed:
        applied = next((folded for records, folded in seen if records >= count), None)
        if applied is not None:
            lags.append(((at - first_commit).total_seconds(), max(0.0, (applied - at).total_seconds())))
    half = seconds / 2
    early = [lag for when, lag in lags if when < half]
    late = [lag for when, lag in lags if when >= half]
    all_lags = [lag for _when, lag in lags]
    rounds = max(1, number - 1)
    figures.update(
        batches=number,
        events=sent,
        unmatched=len(committed) - len(lags),
        p50=_percentile(all_lags, 0.5),
        p99=_percentile(all_lags, 0.99),
        early_p50=_percentile(early, 0.5) if early else float("nan"),
        early_p99=_percentile(early, 0.99) if early else float("nan"),
        late_p50=_percentile(late, 0.5) if late else float("nan"),
        late_p99=_percentile(late, 0.99) if late else float("nan"),
        off_rate=rounds * ingest.BATCH / times["off"],
        on_rate=rounds * ingest.BATCH / times["on"],
        ceiling_rate=rounds * ingest.BATCH / times["ceiling"],
        folds=len(seen),
    )
    return figures


def live_report(f: dict[str, Any]) -> None:
    print(
        f"\n== {f['db']} live: {f['events']:,} events in {f['batches']} batches of 1,000, "
        f"{f['folds']} folds seen"
    )
    print(
        f"   freshness (response -> fold COMMIT): p50 {f['p50'] * 1000:.0f} ms, p99 {f['p99'] * 1000:.0f} ms "
        f"(target p99 <= 2 s)"
    )
    print(
        f"   first half p50/p99 {f['early_p50'] * 1000:.0f}/{f['early_p99'] * 1000:.0f} ms, second half "
        f"{f['late_p50'] * 1000:.0f}/{f['late_p99'] * 1000:.0f} ms; batches never matched {f['unmatched']}"
    )
    print(
        f"   ingest: deriver off {f['off_rate']:,.0f} events/s, on {f['on_rate']:,.0f} events/s, "
        f"Core executemany {f['ceiling_rate']:,.0f}/s; on / ceiling = {f['on_rate'] / f['ceiling_rate']:.2f} "
        f"(target >= 0.5), on / off = {f['on_rate'] / f['off_rate']:.2f}"
    )


if __name__ == "__main__":
    main()
