"""KPIs (§4.1-4.4), rankings (§4.5) and aggregate reads (§3.5), inside the caller's scope.

A built (final) day reads the aggregates, checked against the snapshots they came
from (E_AGG_CONFLICT). A day not built yet (today, or a day with live counters)
reads the live per-path sums the deriver maintains (``live``), marked provisional
(``final: false``, ``asOf`` the deriver's latest fold). Never the raw logs (P-05).
A built day that received records after its build is ``stale`` until rebuilt.

Scope policy:
- Rows are keyed by the unit's whole path, and every read filters on the path
  (the caller's bound plus its filter): a row never mixes two nodes of the tree.
- ``kpis``: the finest id of (caller's bound + requested filter) names the unit;
  its rows on paths matching every other id are summed (a team under two
  branches that day, for an admin asking by team id alone). A unit whose rows
  all lie elsewhere is FORBIDDEN (for an admin: NOT_FOUND, the unit is not where
  the filter says). A unit with no activity that day answers zeros and null rates.
- ``ranking`` and ``aggregates``: an operator sees the units at or below its own
  level inside its node (a country operator ranks its branches or teams, or its
  country alone); a coarser level is FORBIDDEN, since it would show other nodes.
- A unit never seen in any aggregate cannot be placed in the tree, so only an
  admin may ask for it (and gets zeros / nothing); others get FORBIDDEN.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import Forbidden, NotFound, SchemaMismatch
from app.scope import LEVELS, ScopeFilter, bound_depth, ensure_operator, narrow, principal_bound
from app.services.analytics.check import verify_aggregates, verify_rates
from app.services.analytics.rules import Counters, Level, RankBy, Versions
from app.services.analytics.tables import AGGREGATES, BUILDS
from app.validation import check_id
from persistence.db import Database
from persistence.models import AGGREGATE_MODELS, LIVE_DAY, LIVE_PATH_DAY, LIVE_STATE, AggregateRow
from persistence.models.live import VERSIONS


@dataclass(frozen=True, slots=True)
class KpiReport:
    """§4.1-4.4 for one unit (or the whole organisation) on one day."""

    day: date
    level: Level | None  # None: the whole organisation
    scope: ScopeFilter  # the unit and its parents
    counters: Counters
    versions: Versions
    final: bool = True  # False: live counters, until buildSnapshots finalises the day
    stale: bool = False  # a final day that received records after its build
    as_of: datetime | None = None  # built at, or the deriver's latest fold


@dataclass(frozen=True, slots=True)
class RankedUnit:
    rank: int | None  # None: no value to rank on (zero denominator)
    value: float | None
    row: AggregateRow
    final: bool = True


@dataclass(frozen=True, slots=True)
class AggregateReport:
    rows: Sequence[AggregateRow]
    provisional: frozenset[date]  # days read from the live counters (not built yet)


@dataclass(frozen=True, slots=True)
class DayStatus:
    final: bool
    stale: bool
    as_of: datetime | None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def day_status(session: AsyncSession, day: date) -> DayStatus:
    """Final (built), or provisional (today, or a day with live counters); else NOT_FOUND."""
    built = await session.scalar(sa.select(BUILDS.c.built_at).where(BUILDS.c.day == day))
    live = (await session.execute(sa.select(LIVE_DAY.c.stale).where(LIVE_DAY.c.day == day))).first()
    if built is not None:
        return DayStatus(final=True, stale=bool(live and live.stale), as_of=_utc(built))
    if live is None and day != datetime.now(UTC).date():
        raise NotFound(
            f"snapshots for {day.isoformat()} have not been built yet (buildSnapshots), "
            "and no live counters hold it"
        )
    folded = await session.scalar(sa.select(LIVE_STATE.c.folded_at).where(LIVE_STATE.c.name == "deriver"))
    return DayStatus(final=False, stale=False, as_of=_utc(folded))


def _as_of(status: DayStatus, rows: Sequence[AggregateRow]) -> datetime | None:
    """A provisional report is as of the fold its live rows were read after (``_live_rows``),
    not the one ``day_status`` saw before them."""
    if status.final or not rows:
        return status.as_of
    return max(row.built_at for row in rows)


async def _live_rows(
    session: AsyncSession, level: Level, day_from: date, day_to: date, pins: Mapping[str, str]
) -> list[AggregateRow]:
    """Rows shaped as ``level``'s aggregates, summed from the live per-path sums of days not
    built yet (the same sums, versions and rates a build would store from its snapshots)."""
    p = LIVE_PATH_DAY.c
    query = sa.select(LIVE_PATH_DAY).where(
        p.day.between(day_from, day_to),
        p.day.not_in(sa.select(BUILDS.c.day)),
        *(p[f"{name}_id"] == value for name, value in pins.items()),
    )
    path = [name.column for name in (*level.parents, level)]
    groups: defaultdict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in (await session.execute(query)).all():
        groups[(row.day, *(getattr(row, column) for column in path))].append(row)
    # After the sums: SQLite reads statement by statement (no snapshot across them), and a fold
    # that commits in between must not leave sums newer than their asOf (or sums without one).
    as_of = _utc(
        await session.scalar(sa.select(LIVE_STATE.c.folded_at).where(LIVE_STATE.c.name == "deriver"))
    ) or datetime.now(UTC)
    made: list[AggregateRow] = []
    for (day, *ids), rows in groups.items():
        counters = sum((Counters.of(row) for row in rows), Counters())
        latest = max(rows, key=lambda row: (_utc(row.latest_at), row.latest_user))
        made.append(
            _model(level)(
                day=day,
                **dict(zip(path, ids, strict=True)),
                **{name: getattr(counters, name) for name in Counters.names()},
                module_completion_rate=counters.module_completion_rate,
                quiz_pass_rate=counters.quiz_pass_rate,
                avg_upsell_success_rate=counters.upsell_success_rate,
                avg_xp_total=counters.avg_xp_total,
                **{name: getattr(latest, name) for name in VERSIONS},
                latest_at=_utc(latest.latest_at) or as_of,
                built_at=as_of,
            )
        )
    made.sort(key=lambda row: (row.day, getattr(row, level.column), *(getattr(row, c) for c in path)))
    return made


def versions_of(row: AggregateRow) -> Versions:
    return Versions(row.module_version, row.scenario_version, row.prompt_version)


def scope_of(level: Level, row: AggregateRow) -> ScopeFilter:
    """The unit's place in the tree: its own id and its parents'."""
    names = [*level.parents, level]
    return ScopeFilter(**{name.column: getattr(row, name.column) for name in names})


def _model(level: Level) -> type[AggregateRow]:
    return AGGREGATE_MODELS[level.value]


def _where_pins(level: Level, pins: Mapping[str, str]) -> list[Any]:
    table = AGGREGATES[level]
    return [table.c[f"{name}_id"] == value for name, value in pins.items()]


async def _rows(
    session: AsyncSession, level: Level, *where: Any, limit: int | None = None
) -> list[AggregateRow]:
    table = AGGREGATES[level]
    path = [table.c[parent.column] for parent in level.parents]
    query = (
        sa.select(_model(level))
        .where(*where)
        .order_by(table.c.day, table.c[level.column], *path)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def _place(
    session: AsyncSession, principal: Principal, level: Level, unit_id: str, pins: Mapping[str, str]
) -> AggregateRow | None:
    """Where a unit the caller names sits: its latest row (any day) on a path inside ``pins``
    (which hold the caller's bound). A unit with rows only elsewhere is FORBIDDEN (an admin
    learns NOT_FOUND: not where the filter says); a unit with no rows at all is None for an
    admin or an operator naming its own unit (zeros, nothing yet), FORBIDDEN for the others."""
    table = AGGREGATES[level]
    named = table.c[level.column] == unit_id
    inside = sa.select(_model(level)).where(named, *_where_pins(level, pins))
    placed = (await session.scalars(inside.order_by(table.c.day.desc()).limit(1))).first()
    if placed is not None:
        return placed
    if await session.scalar(sa.select(sa.exists().where(named))):
        if principal.is_admin:
            raise NotFound(f"{level.value} {unit_id} is not where the filter puts it")
        raise Forbidden("not in your scope")
    if principal.is_admin or principal_bound(principal).pinned() == {level.value: unit_id}:
        return None
    raise Forbidden("not in your scope")


def _shared_scope(level: Level, rows: Sequence[AggregateRow]) -> ScopeFilter:
    """The ids every row's path agrees on (a unit under two parents keeps only the common ones)."""
    paths = [scope_of(level, row).pinned() for row in rows]
    common = {name: value for name, value in paths[0].items() if all(p.get(name) == value for p in paths)}
    return ScopeFilter(**{f"{name}_id": value for name, value in common.items()})


def _ensure_level_visible(principal: Principal, level: Level) -> None:
    ensure_operator(principal)
    depth = bound_depth(principal)
    if depth is not None and level.depth < depth:
        raise Forbidden(
            f"a {principal.role.value} operator sees {LEVELS[depth]} level and below "
            f"inside its own {LEVELS[depth]}, not {level.value} level"
        )


async def kpis(
    session: AsyncSession, principal: Principal, day: date, requested: ScopeFilter | None
) -> KpiReport:
    pins = narrow(principal, requested).pinned()
    for value in pins.values():
        check_id("scope", value)
    status = await day_status(session, day)
    if not pins:
        return await _organisation_kpis(session, day, status)
    level = Level(max(pins, key=LEVELS.index))
    unit_id = pins[level.value]
    table = AGGREGATES[level]
    if status.final:
        rows = await _rows(session, level, table.c.day == day, *_where_pins(level, pins))
    else:
        rows = await _live_rows(session, level, day, day, pins)
    if rows:
        where = _shared_scope(level, rows)
    else:  # no activity that day: zeros, once the unit is known to be the caller's to ask for
        placed = await _place(session, principal, level, unit_id, pins)
        where = scope_of(level, placed) if placed else ScopeFilter(**{f"{k}_id": v for k, v in pins.items()})
    if status.final:
        await verify_aggregates(session, [level], day, day, pins)
    verify_rates(level, rows)
    # a unit under two parents that day: the versions of the row with the latest record
    latest = max(
        rows, key=lambda row: (row.latest_at, tuple(scope_of(level, row).pinned().values())), default=None
    )
    return KpiReport(
        day=day,
        level=level,
        scope=where,
        counters=sum((Counters.of(row) for row in rows), Counters()),
        versions=versions_of(latest) if latest is not None else Versions(),
        final=status.final,
        stale=status.stale,
        as_of=_as_of(status, rows),
    )


async def _organisation_kpis(session: AsyncSession, day: date, status: DayStatus) -> KpiReport:
    """The whole organisation (admin, no filter): the regions summed; the versions of the
    region whose latest record is the latest (as a unit's versions are chosen)."""
    if status.final:
        rows = await _rows(session, Level.REGION, AGGREGATES[Level.REGION].c.day == day)
        await verify_aggregates(session, [Level.REGION], day, day, {})
    else:
        rows = await _live_rows(session, Level.REGION, day, day, {})
    verify_rates(Level.REGION, rows)
    latest = max(rows, key=lambda row: (row.latest_at, getattr(row, Level.REGION.column)), default=None)
    return KpiReport(
        day=day,
        level=None,
        scope=ScopeFilter(),
        counters=sum((Counters.of(row) for row in rows), Counters()),
        versions=versions_of(latest) if latest is not None else Versions(),
        final=status.final,
        stale=status.stale,
        as_of=_as_of(status, rows),
    )


async def ranking(
    session: AsyncSession, principal: Principal, level: Level, day: date, by: RankBy
) -> list[RankedUnit]:
    """§4.5: units at ``level`` in the caller's node, best first; equal values share a rank
    (1, 2, 2, 4), units with no value (zero denominator) come last, unranked."""
    _ensure_level_visible(principal, level)
    status = await day_status(session, day)
    bound = principal_bound(principal).pinned()
    if status.final:
        rows = await _rows(session, level, AGGREGATES[level].c.day == day, *_where_pins(level, bound))
        await verify_aggregates(session, [level], day, day, bound)
    else:
        rows = await _live_rows(session, level, day, day, bound)
    verify_rates(level, rows)
    keyed = sorted(
        ((getattr(row, by.value), row) for row in rows),
        key=lambda pair: (pair[0] is None, -(pair[0] or 0.0), getattr(pair[1], level.column)),
    )
    ranked: list[RankedUnit] = []
    for position, (value, row) in enumerate(keyed, start=1):
        if value is None:
            rank = None
        elif ranked and ranked[-1].value == value:
            rank = ranked[-1].rank
        else:
            rank = position
        ranked.append(RankedUnit(rank=rank, value=value, row=row, final=status.final))
    return ranked


async def aggregates(
    session: AsyncSession,
    principal: Principal,
    level: Level,
    day_from: date,
    day_to: date,
    scope_id: str | None,
    *,
    max_days: int,
    max_rows: int,
) -> AggregateReport:
    """§3.5 rows of one level over a date range (inclusive), by day then unit id."""
    _ensure_level_visible(principal, level)
    if day_from > day_to:
        raise SchemaMismatch("from must not be after to", field="from")
    if (day_to - day_from).days + 1 > max_days:
        raise SchemaMismatch(f"at most {max_days} days per request", field="to")
    pins = dict(principal_bound(principal).pinned())
    if scope_id is not None:
        check_id("scopeId", scope_id)
        if pins.setdefault(level.value, scope_id) != scope_id:  # another unit at one's own level
            raise Forbidden("not in your scope")
        await _place(session, principal, level, scope_id, pins)
    table = AGGREGATES[level]
    rows = await _rows(
        session, level, table.c.day.between(day_from, day_to), *_where_pins(level, pins), limit=max_rows + 1
    )
    live = await _live_rows(session, level, day_from, day_to, pins)
    rows = sorted(
        [*rows, *live],
        key=lambda row: (
            row.day,
            getattr(row, level.column),
            *(getattr(row, p.column) for p in level.parents),
        ),
    )
    if len(rows) > max_rows:
        raise SchemaMismatch(
            f"more than {max_rows} aggregate rows: narrow the dates or pass scopeId", field="from"
        )
    await verify_aggregates(session, [level], day_from, day_to, pins)
    verify_rates(level, rows)
    return AggregateReport(rows=rows, provisional=frozenset(row.day for row in live))


def _figures(report: KpiReport) -> tuple[Any, ...]:
    return (report.day, report.scope, report.counters, report.versions, report.final, report.stale)


async def kpis_updates(
    db: Database,
    principal: Principal,
    requested: ScopeFilter | None,
    wakeups: asyncio.Queue[None],
    min_interval: float = 1.0,
) -> AsyncIterator[KpiReport]:
    """kpisUpdated: today's KPIs for the caller's unit now, then again whenever they change.

    ``wakeups`` are the deriver's folds (any scope, any worker): each one reads the figures
    afresh through ``kpis`` (scope checked again every time) and sends them only if they
    changed. At most one update per ``min_interval``: wake-ups in between are coalesced
    into the next read."""
    loop = asyncio.get_running_loop()
    async with db.session() as session:
        last = await kpis(session, principal, datetime.now(UTC).date(), requested)
    yield last
    sent = loop.time()
    while True:
        await wakeups.get()
        await asyncio.sleep(max(0.0, min_interval - (loop.time() - sent)))
        while not wakeups.empty():  # everything that arrived meanwhile: one read
            wakeups.get_nowait()
        async with db.session() as session:
            report = await kpis(session, principal, datetime.now(UTC).date(), requested)
        if _figures(report) != _figures(last):
            last = report
            yield report
            sent = loop.time()
