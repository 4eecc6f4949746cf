"""KPIs (§4.1-4.4), rankings (§4.5) and aggregate reads (§3.5), inside the caller's scope.

Every read comes from the aggregates, checked against the snapshots they came
from (E_AGG_CONFLICT) - never from the raw logs.

Scope policy:
- ``kpis``: the finest id of (caller's bound + requested filter) names the unit;
  its parents must match every other id, or the answer is FORBIDDEN (for an
  admin: NOT_FOUND, the unit is not where the filter says). A unit with no
  activity that day answers zeros and null rates.
- ``ranking`` and ``aggregates``: an operator sees the units at or below its own
  level inside its node (a country operator ranks its branches or teams, or its
  country alone); a coarser level is FORBIDDEN, since it would show other nodes.
- A unit never seen in any aggregate cannot be placed in the tree, so only an
  admin may ask for it (and gets zeros / nothing); others get FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import Forbidden, NotFound, SchemaMismatch
from app.scope import LEVELS, ScopeFilter, ensure_operator, narrow, principal_bound
from app.services.analytics.check import verify_aggregates, verify_rates
from app.services.analytics.rules import Counters, Level, RankBy, Versions
from app.services.analytics.tables import AGGREGATES, BUILDS
from app.validation import check_id
from persistence.models import AGGREGATE_MODELS, AggregateRow


@dataclass(frozen=True, slots=True)
class KpiReport:
    """§4.1-4.4 for one unit (or the whole organisation) on one day."""

    day: date
    level: Level | None  # None: the whole organisation
    scope: ScopeFilter  # the unit and its parents
    counters: Counters
    versions: Versions


@dataclass(frozen=True, slots=True)
class RankedUnit:
    rank: int | None  # None: no value to rank on (zero denominator)
    value: float | None
    row: AggregateRow


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


async def _ensure_built(session: AsyncSession, day: date) -> None:
    if await session.scalar(sa.select(BUILDS.c.day).where(BUILDS.c.day == day)) is None:
        raise NotFound(f"snapshots for {day.isoformat()} have not been built yet (buildSnapshots)")


async def _rows(
    session: AsyncSession, level: Level, *where: Any, limit: int | None = None
) -> list[AggregateRow]:
    table = AGGREGATES[level]
    query = sa.select(_model(level)).where(*where).order_by(table.c.day, table.c[level.column]).limit(limit)
    return list((await session.scalars(query)).all())


async def _placed(session: AsyncSession, level: Level, unit_id: str) -> AggregateRow | None:
    """The unit's most recent aggregate row on any day: where it sits in the tree."""
    table = AGGREGATES[level]
    query = (
        sa.select(_model(level)).where(table.c[level.column] == unit_id).order_by(table.c.day.desc()).limit(1)
    )
    return (await session.scalars(query)).first()


def _bound_depth(principal: Principal) -> int:
    """How deep in the tree the caller is bound (-1: admin, everything)."""
    pinned = principal_bound(principal).pinned()
    return max((LEVELS.index(name) for name in pinned), default=-1)


def _ensure_level_visible(principal: Principal, level: Level) -> None:
    ensure_operator(principal)
    if level.depth < _bound_depth(principal):
        raise Forbidden(
            f"a {principal.role.value} operator sees {LEVELS[_bound_depth(principal)]} level and below "
            f"inside its own {LEVELS[_bound_depth(principal)]}, not {level.value} level"
        )


async def kpis(
    session: AsyncSession, principal: Principal, day: date, requested: ScopeFilter | None
) -> KpiReport:
    pins = narrow(principal, requested).pinned()
    for value in pins.values():
        check_id("scope", value)
    await _ensure_built(session, day)
    if not pins:
        return await _organisation_kpis(session, day)
    level = Level(max(pins, key=LEVELS.index))
    unit_id = pins[level.value]
    table = AGGREGATES[level]
    rows = await _rows(session, level, table.c.day == day, table.c[level.column] == unit_id)
    placed = rows[0] if rows else await _placed(session, level, unit_id)
    _ensure_unit_matches(principal, level, unit_id, placed, pins)
    await verify_aggregates(session, [level], day, day, {level.value: unit_id})
    verify_rates(level, rows)
    return KpiReport(
        day=day,
        level=level,
        scope=scope_of(level, placed) if placed else ScopeFilter(**{f"{k}_id": v for k, v in pins.items()}),
        counters=Counters.of(rows[0]) if rows else Counters(),
        versions=versions_of(rows[0]) if rows else Versions(),
    )


def _ensure_unit_matches(
    principal: Principal, level: Level, unit_id: str, placed: AggregateRow | None, pins: Mapping[str, str]
) -> None:
    """Every id the caller pinned (its own bound included) must be one of the unit's parents."""
    if placed is None:
        if principal.is_admin or principal_bound(principal).pinned() == {level.value: unit_id}:
            return
        raise Forbidden("not in your scope")
    for name, value in pins.items():
        if getattr(placed, f"{name}_id") != value:
            if principal.is_admin:
                raise NotFound(f"{level.value} {unit_id} is not in {name} {value}")
            raise Forbidden("not in your scope")


async def _organisation_kpis(session: AsyncSession, day: date) -> KpiReport:
    """The whole organisation (admin, no filter): the regions summed; the versions of the
    region whose latest record is the latest (as a unit's versions are chosen)."""
    rows = await _rows(session, Level.REGION, AGGREGATES[Level.REGION].c.day == day)
    await verify_aggregates(session, [Level.REGION], day, day, {})
    verify_rates(Level.REGION, rows)
    latest = max(rows, key=lambda row: (row.latest_at, getattr(row, Level.REGION.column)), default=None)
    return KpiReport(
        day=day,
        level=None,
        scope=ScopeFilter(),
        counters=sum((Counters.of(row) for row in rows), Counters()),
        versions=versions_of(latest) if latest is not None else Versions(),
    )


async def ranking(
    session: AsyncSession, principal: Principal, level: Level, day: date, by: RankBy
) -> list[RankedUnit]:
    """§4.5: units at ``level`` in the caller's node, best first; equal values share a rank
    (1, 2, 2, 4), units with no value (zero denominator) come last, unranked."""
    _ensure_level_visible(principal, level)
    await _ensure_built(session, day)
    bound = principal_bound(principal).pinned()
    rows = await _rows(session, level, AGGREGATES[level].c.day == day, *_where_pins(level, bound))
    await verify_aggregates(session, [level], day, day, bound)
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
        ranked.append(RankedUnit(rank=rank, value=value, row=row))
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
) -> Sequence[AggregateRow]:
    """§3.5 rows of one level over a date range (inclusive), by day then unit id."""
    _ensure_level_visible(principal, level)
    if day_from > day_to:
        raise SchemaMismatch("from must not be after to", field="from")
    if (day_to - day_from).days + 1 > max_days:
        raise SchemaMismatch(f"at most {max_days} days per request", field="to")
    pins = dict(principal_bound(principal).pinned())
    if scope_id is not None:
        check_id("scopeId", scope_id)
        placed = await _placed(session, level, scope_id)
        if placed is None and not principal.is_admin:
            raise Forbidden("not in your scope")
        if placed is not None and any(getattr(placed, f"{n}_id") != v for n, v in pins.items()):
            raise Forbidden("not in your scope")
        pins[level.value] = scope_id
    table = AGGREGATES[level]
    rows = await _rows(
        session, level, table.c.day.between(day_from, day_to), *_where_pins(level, pins), limit=max_rows + 1
    )
    if len(rows) > max_rows:
        raise SchemaMismatch(
            f"more than {max_rows} aggregate rows: narrow the dates or pass scopeId", field="from"
        )
    await verify_aggregates(session, [level], day_from, day_to, pins)
    verify_rates(level, rows)
    return rows
