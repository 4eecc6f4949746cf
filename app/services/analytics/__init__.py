"""Derived analytics of data-layer §3.4-§5: snapshots, aggregates, KPIs, rankings, Insights input.

- ``live``: the deriver - new raw records -> per-(user, day) counters -> per-path sums.
- ``build``: buildSnapshots - a day's counters (or raw logs) -> snapshots -> aggregates (P-05).
- ``check``: the E_AGG_CONFLICT consistency check.
- ``reads``: kpis, ranking, aggregates, in the caller's scope.
- ``insights``: the Insights Engine input of §5.
- ``rules``: levels, formulas and the data conventions, in one place.
"""

from app.services.analytics.build import BuildResult, build_snapshots
from app.services.analytics.insights import InsightsPayload, UpsellMetrics, insights_input
from app.services.analytics.live import KPIS_TOPIC, LiveDeriver, latest_lag_seconds
from app.services.analytics.reads import (
    AggregateReport,
    KpiReport,
    RankedUnit,
    aggregates,
    kpis,
    kpis_updates,
    ranking,
    scope_of,
    versions_of,
)
from app.services.analytics.rules import Counters, Level, RankBy, Versions

__all__ = [
    "KPIS_TOPIC",
    "AggregateReport",
    "BuildResult",
    "Counters",
    "InsightsPayload",
    "KpiReport",
    "Level",
    "LiveDeriver",
    "RankBy",
    "RankedUnit",
    "UpsellMetrics",
    "Versions",
    "aggregates",
    "build_snapshots",
    "insights_input",
    "kpis",
    "kpis_updates",
    "latest_lag_seconds",
    "ranking",
    "scope_of",
    "versions_of",
]
