"""The consistency check behind E_AGG_CONFLICT: aggregates must equal the snapshots they came from.

One query per level compares each aggregate row's summed counters with the
sums of that unit's snapshots (a UNION ALL of +aggregate and -snapshot values
grouped by day and unit: every group must sum to zero, and an aggregate row
that is missing or extra shows up as a non-zero group). Stored rates are then
re-derived from the counters in Python, with no extra query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AggregationConflict
from app.services.analytics.rules import Counters, Level
from app.services.analytics.tables import AGGREGATES, SNAPSHOTS

_SHOWN = 5  # conflicting units named in the error


def _snapshot_value(name: str) -> Any:
    s = SNAPSHOTS.c
    if name == "users":
        return sa.literal(1)
    if name == "active_users":
        return sa.case((s.logged_in, 1), else_=0)
    if name == "xp_total_sum":
        return s.xp_total
    return s[name]


def conflicts_query(level: Level, day_from: date, day_to: date, pins: Mapping[str, str]) -> sa.Select[Any]:
    """(day, unit) of every row at ``level`` inside ``pins`` that disagrees with its snapshots.

    ``pins`` are scope ids at ``level`` or coarser (``{"branch": "b1"}``). Rows are
    keyed by their unit's whole path, so each row is compared with exactly the
    snapshots on that path: a missing or extra row shows as a non-zero group.
    """
    agg, s = AGGREGATES[level], SNAPSHOTS.c
    path = [name.column for name in (*level.parents, level)]
    names = Counters.names()
    side_a = sa.select(
        agg.c.day, *(agg.c[column] for column in path), *(agg.c[name].label(name) for name in names)
    ).where(agg.c.day.between(day_from, day_to), *(agg.c[f"{n}_id"] == v for n, v in pins.items()))
    side_s = sa.select(
        s.day, *(s[column] for column in path), *((-_snapshot_value(name)).label(name) for name in names)
    ).where(s.day.between(day_from, day_to), *(s[f"{n}_id"] == v for n, v in pins.items()))
    both = sa.union_all(side_a, side_s).subquery("both_sides")
    keys = [both.c.day, *(both.c[column] for column in path)]
    return (
        sa.select(both.c.day, both.c[level.column])
        .group_by(*keys)
        .having(sa.or_(*(sa.func.sum(both.c[name]) != 0 for name in names)))
        .order_by(*keys)
        .limit(_SHOWN)
    )


async def verify_aggregates(
    session: AsyncSession, levels: Iterable[Level], day_from: date, day_to: date, pins: Mapping[str, str]
) -> None:
    """Raise E_AGG_CONFLICT when an aggregate in scope disagrees with its snapshots."""
    for level in levels:
        bad = (await session.execute(conflicts_query(level, day_from, day_to, pins))).all()
        if bad:
            raise AggregationConflict(
                f"agg_{level.value} disagrees with snapshot_daily_user: rebuild the day (buildSnapshots)",
                level=level.name,
                conflicts=[{"date": day.isoformat(), "scopeId": unit} for day, unit in bad],
            )


def _same(stored: float | None, derived: float | None) -> bool:
    if stored is None or derived is None:
        return stored is None and derived is None
    return math.isclose(stored, derived, rel_tol=1e-9, abs_tol=1e-12)


def verify_rates(level: Level, rows: Iterable[Any]) -> None:
    """Raise E_AGG_CONFLICT when a stored rate is not what its own counters give."""
    for row in rows:
        counters = Counters.of(row)
        pairs = (
            (row.module_completion_rate, counters.module_completion_rate),
            (row.quiz_pass_rate, counters.quiz_pass_rate),
            (row.avg_upsell_success_rate, counters.upsell_success_rate),
            (row.avg_xp_total, counters.avg_xp_total),
        )
        if not all(_same(stored, derived) for stored, derived in pairs):
            raise AggregationConflict(
                f"agg_{level.value} holds a rate its own counters do not give; rebuild the day",
                level=level.name,
                conflicts=[{"date": row.day.isoformat(), "scopeId": getattr(row, level.column)}],
            )
