"""Derived analytics of data-layer §3.4-§5: snapshots, aggregates, KPIs, rankings, Insights input.

- ``build``: buildSnapshots - raw logs of one day -> snapshots -> aggregates (P-05).
- ``check``: the E_AGG_CONFLICT consistency check.
- ``reads``: kpis, ranking, aggregates, in the caller's scope.
- ``insights``: the Insights Engine input of §5.
- ``rules``: levels, formulas and the data conventions, in one place.
"""

from app.services.analytics.build import BuildResult, build_snapshots
from app.services.analytics.insights import InsightsPayload, UpsellMetrics, insights_input
from app.services.analytics.reads import (
    KpiReport,
    RankedUnit,
    aggregates,
    kpis,
    ranking,
    scope_of,
    versions_of,
)
from app.services.analytics.rules import Counters, Level, RankBy, Versions

__all__ = [
    "BuildResult",
    "Counters",
    "InsightsPayload",
    "KpiReport",
    "Level",
    "RankBy",
    "RankedUnit",
    "UpsellMetrics",
    "Versions",
    "aggregates",
    "build_snapshots",
    "insights_input",
    "kpis",
    "ranking",
    "scope_of",
    "versions_of",
]
