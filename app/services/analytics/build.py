"""buildSnapshots: finalise one UTC day -> snapshot_daily_user -> the four aggregates.

A first build finalises the day from its live counters (``live``: the deriver's
per-(user, day) rows, folded first inside the build's transaction, which then holds
the deriver's lock): snapshots are the counters plus the cumulative xpTotal and
badgesOwned of each user's previous snapshot, and the aggregates sum the deriver's
per-path sums of the same counters (``live_path_day``), checked against the
snapshots. ``rebuild: true`` builds the day again from its raw logs, and the new
snapshots must agree with the counters, or the rebuild fails with E_AGG_CONFLICT
(nothing silently drifts apart); its aggregates sum its snapshots.

Everything is set-based (INSERT ... SELECT ... GROUP BY), filtered on the
indexed ``day`` column, so a day costs time in proportion to that day's
records, not to the history. The aggregates never read a raw log (P-05,
AG-DATA-03): snapshots, or the path sums of the counters the snapshots are.
The whole build is one transaction, checked before it commits.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import AggregationConflict, DuplicateSnapshot, SchemaMismatch
from app.services.analytics import live
from app.services.analytics.rules import Counters, Level
from app.services.analytics.statements import (
    SNAPSHOT_COLUMNS,
    UNIT_COLUMNS,
    Dialect,
    aggregate_columns,
    aggregate_select,
    snapshot_select,
    totals_select,
    units_select,
)
from app.services.analytics.tables import AGGREGATES, BUILDS, SNAPSHOTS, UNITS
from app.services.audit import AuditLog
from persistence.db import Database
from persistence.models.live import LIVE_PATH_DAY

log = logging.getLogger("trainer_console.analytics")


@dataclass(frozen=True, slots=True)
class BuildResult:
    day: date
    rebuilt: bool
    snapshots: int
    aggregates: dict[Level, int]
    built_at: datetime
    built_by: str
    # Days after this one that were already built: their cumulative xpTotal and
    # badgesOwned started from the old state of this day, so rebuild them too.
    later_days: list[date]


async def _claim_day(
    session: AsyncSession, principal: Principal, day: date, rebuild: bool, threshold: float
) -> dict[str, Any] | None:
    """Take the day for this build and return the previous build's record (None: first build).

    The first statement writes, so the transaction holds the write lock (SQLite)
    or the row lock (PostgreSQL) before it reads anything: two concurrent builds
    of one day cannot both succeed.
    """
    now = datetime.now(UTC)
    if rebuild:
        claimed = await session.execute(
            sa.update(BUILDS).where(BUILDS.c.day == day).values(rebuilds=BUILDS.c.rebuilds + 1)
        )
        if claimed.rowcount:  # type: ignore[attr-defined]
            before = (await session.execute(sa.select(BUILDS).where(BUILDS.c.day == day))).mappings().one()
            await session.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.day == day))
            for table in AGGREGATES.values():
                await session.execute(sa.delete(table).where(table.c.day == day))
            return {**before, "rebuilds": before["rebuilds"] - 1}
    try:
        await session.execute(
            sa.insert(BUILDS).values(
                day=day,
                built_at=now,
                built_by=principal.sub,
                snapshots=0,
                rebuilds=0,
                quiz_pass_threshold=threshold,
            )
        )
    except IntegrityError as exc:
        raise DuplicateSnapshot(
            f"snapshots for {day.isoformat()} already exist; pass rebuild: true to rebuild them (audited)",
            date=day.isoformat(),
        ) from exc
    return None


async def build_snapshots(
    db: Database,
    audit_log: AuditLog,
    principal: Principal,
    day: date,
    *,
    rebuild: bool,
    quiz_pass_threshold: float,
    request_id: str,
) -> BuildResult:
    """Build (or, with ``rebuild``, replace) one UTC day's snapshots and aggregates.

    One transaction (on SQLite a unit of the group-commit writer, as a fold is); any failure,
    including the final consistency check, leaves the day as it was.
    """
    if day > datetime.now(UTC).date():
        raise SchemaMismatch(
            "date is in the future: only past or current UTC days can be built", field="date"
        )

    async def build(session: AsyncSession) -> BuildResult:
        before = await _claim_day(session, principal, day, rebuild, quiz_pass_threshold)
        built_at = datetime.now(UTC)
        sql = Dialect(session.get_bind().dialect.name)
        if sql.postgres:
            # A batch job's GROUP BYs over a whole day: let them hash in memory rather than spill.
            await session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        # the latest day with snapshots up to this one (one probe of the day index)
        latest = await session.scalar(sa.select(sa.func.max(SNAPSHOTS.c.day)).where(SNAPSHOTS.c.day <= day))
        if before is None and latest == day:
            # Snapshot rows without a build record can only have been written by hand.
            raise DuplicateSnapshot(f"snapshots for {day.isoformat()} already exist", date=day.isoformat())
        await live.fold_for_build(session, day, quiz_pass_threshold)
        if before is None:
            snapshots, counts = await _finalise(session, day, built_at, sql, history=latest is not None)
        else:
            snapshots, counts = await _rebuild(session, day, quiz_pass_threshold, built_at, sql)
        if before is not None and (wrong := await live.disagreeing_users(session, day)):
            raise AggregationConflict(
                "snapshots rebuilt from the raw logs disagree with the day's live counters",
                date=day.isoformat(),
                users=wrong,
            )
        await live.mark_current(session, day)
        await live.mark_bases(session, day)
        await session.execute(
            sa.update(BUILDS)
            .where(BUILDS.c.day == day)
            .values(
                built_at=built_at,
                built_by=principal.sub,
                snapshots=snapshots,
                quiz_pass_threshold=quiz_pass_threshold,
            )
        )
        later = (
            await session.scalars(sa.select(BUILDS.c.day).where(BUILDS.c.day > day).order_by(BUILDS.c.day))
        ).all()
        built = BuildResult(
            day=day,
            rebuilt=before is not None,
            snapshots=snapshots,
            aggregates=counts,
            built_at=built_at,
            built_by=principal.sub,
            later_days=list(later),
        )
        if before is not None:
            await session.run_sync(
                audit_log.append,
                principal,
                request_id=request_id,
                action="rebuild_snapshots",
                target=f"snapshot_daily_user/{day.isoformat()}",
                before=_jsonable(before),
                after={
                    "builtAt": built_at.isoformat(),
                    "builtBy": principal.sub,
                    "snapshots": snapshots,
                    "quizPassThreshold": quiz_pass_threshold,
                },
            )
        log.info("built %s snapshots for %s (rebuild=%s)", snapshots, day, before is not None)
        return built

    return await db.heavy_transaction(build)


# The bind parameters of the statements a first build makes once (per dialect) and runs for any day.
DAY = sa.bindparam("build_day", type_=sa.Date())
BUILT_AT = sa.bindparam("build_time", type_=sa.DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class _FirstBuild:
    """A first build's statements, made once: building them, and their cache keys, cost more
    than running them on a small day."""

    snapshots: Any
    first_snapshots: Any  # no snapshot before the day
    rebase_paths: Any
    aggregates: dict[Level, Any]
    totals: Any


@functools.cache
def _first_build(dialect: str) -> _FirstBuild:
    sql = Dialect(dialect)
    return _FirstBuild(
        snapshots=sa.insert(SNAPSHOTS).from_select(SNAPSHOT_COLUMNS, live.snapshots_from_counters(DAY, sql)),
        first_snapshots=sa.insert(SNAPSHOTS).from_select(
            SNAPSHOT_COLUMNS, live.snapshots_from_counters(DAY, sql, history=False)
        ),
        rebase_paths=live.rebase_paths(DAY),
        aggregates={
            level: sa.insert(table).from_select(
                aggregate_columns(level), aggregate_select(level, DAY, BUILT_AT, sql, LIVE_PATH_DAY)
            )
            for level, table in AGGREGATES.items()
        },
        totals=totals_select(DAY, paths=True),
    )


async def _finalise(
    session: AsyncSession, day: date, built_at: datetime, sql: Dialect, *, history: bool
) -> tuple[int, dict[Level, int]]:
    """A first build: the snapshots from the day's counters, the aggregates from its per-path
    sums (``live_path_day``, what the same counters sum to per scope path), checked against
    each other. ``history``: there are snapshots before the day."""
    statements = _first_build(session.get_bind().dialect.name)
    params = {"build_day": day, "build_time": built_at}
    current = await live.bases_current(session, day)
    inserted = await session.execute(statements.snapshots if history else statements.first_snapshots, params)
    if not current:
        if sql.postgres:
            # Group the day's snapshots by hashing: the planner, which takes a day just built
            # for a few rows, would sort them on four text keys (several times slower).
            await session.execute(sa.text("SET LOCAL enable_sort = off"))
        await session.execute(statements.rebase_paths, params)
        if sql.postgres:
            await session.execute(sa.text("SET LOCAL enable_sort = on"))
    counts: dict[Level, int] = {}
    for level, statement in statements.aggregates.items():
        counts[level] = int((await session.execute(statement, params)).rowcount)  # type: ignore[attr-defined]
    _check(day, (await session.execute(statements.totals, params)).all())
    return int(inserted.rowcount), counts  # type: ignore[attr-defined]


async def _rebuild(
    session: AsyncSession, day: date, threshold: float, built_at: datetime, sql: Dialect
) -> tuple[int, dict[Level, int]]:
    """``rebuild: true``: the snapshots from the day's raw logs, the aggregates summed from them."""
    inserted = await session.execute(
        sa.insert(SNAPSHOTS).from_select(SNAPSHOT_COLUMNS, snapshot_select(day, threshold, sql))
    )
    connection = await session.connection()
    await connection.run_sync(UNITS.create)
    await session.execute(sa.insert(UNITS).from_select(UNIT_COLUMNS, units_select(day, sql)))
    counts = await _aggregates(session, day, built_at, sql, UNITS)
    await connection.run_sync(UNITS.drop)
    await _check_totals(session, day)
    return int(inserted.rowcount), counts  # type: ignore[attr-defined]


async def _aggregates(
    session: AsyncSession, day: date, built_at: datetime, sql: Dialect, source: sa.Table
) -> dict[Level, int]:
    counts: dict[Level, int] = {}
    for level, table in AGGREGATES.items():
        result = await session.execute(
            sa.insert(table).from_select(
                aggregate_columns(level), aggregate_select(level, day, built_at, sql, source)
            )
        )
        counts[level] = int(result.rowcount)  # type: ignore[attr-defined]
    return counts


async def _check_totals(session: AsyncSession, day: date) -> None:
    _check(day, (await session.execute(totals_select(day))).all())


def _check(day: date, rows: Sequence[Any]) -> None:
    """Every level, and in a first build the per-path sums the levels were made from, must sum to
    the day's snapshots (``totals_select``: one query; reads check unit by unit)."""
    totals = {row.source: Counters.of(row) for row in rows}
    expected = totals.pop("snapshots")
    wrong = [source for source, found in totals.items() if found != expected]
    if wrong:
        raise AggregationConflict(
            "aggregates built for the day do not sum to its snapshots", date=day.isoformat(), levels=wrong
        )


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "builtAt": record["built_at"].isoformat(),
        "builtBy": record["built_by"],
        "snapshots": record["snapshots"],
        "quizPassThreshold": record["quiz_pass_threshold"],
        "rebuilds": record["rebuilds"],
    }
