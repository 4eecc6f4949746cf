"""KPIs, rankings, aggregates, the Insights input, and the snapshot build."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from app import policy
from app.services import analytics
from graphql_schema.info import Info
from graphql_schema.permissions import allow
from graphql_schema.types.analytics import (
    Aggregate,
    InsightsInput,
    Kpis,
    LevelType,
    RankByType,
    RankingEntry,
    SnapshotBuild,
)
from graphql_schema.types.common import ScopeFilterInput


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="§4.1-4.4 for a UTC day, for the unit the scope filter names (default: your own node; "
        "an admin without a filter: the whole organisation). A day not built yet (today) answers from the "
        "live counters, final: false; NOT_FOUND for a past day with neither a build nor counters.",
    )
    async def kpis(self, info: Info, date: dt.date, scope: ScopeFilterInput | None = None) -> Kpis:
        ctx = info.context
        async with ctx.db.session() as session:
            report = await analytics.kpis(session, ctx.principal, date, scope.to_value() if scope else None)
        return Kpis.from_row(report)

    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="§4.5: the units of a level inside your node, best first.",
    )
    async def ranking(
        self,
        info: Info,
        level: LevelType,  # type: ignore[valid-type]
        date: dt.date,
        by: RankByType,  # type: ignore[valid-type]
    ) -> list[RankingEntry]:
        ctx = info.context
        async with ctx.db.session() as session:
            units = await analytics.ranking(session, ctx.principal, level, date, by)
        return [RankingEntry.from_row(level, unit) for unit in units]

    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="§3.5 rows of a level from `from` to `to` (UTC days, inclusive), optionally of one unit.",
    )
    async def aggregates(
        self,
        info: Info,
        level: LevelType,  # type: ignore[valid-type]
        from_: Annotated[dt.date, strawberry.argument(name="from")],
        to: dt.date,
        scope_id: str | None = None,
    ) -> list[Aggregate]:
        ctx = info.context
        async with ctx.db.session() as session:
            report = await analytics.aggregates(
                session,
                ctx.principal,
                level,
                from_,
                to,
                scope_id,
                max_days=ctx.settings.aggregates_max_days,
                max_rows=ctx.settings.aggregates_max_rows,
            )
        return [Aggregate.from_row(level, row, row.day not in report.provisional) for row in report.rows]

    @strawberry.field(
        extensions=[allow(policy.INSIGHTS_READERS)],
        description="§5: the Insights Engine input for one user and UTC day.",
    )
    async def insights_input(self, info: Info, user_id: strawberry.ID, date: dt.date) -> InsightsInput:
        ctx = info.context
        async with ctx.db.session() as session:
            payload = await analytics.insights_input(
                session, ctx.principal, str(user_id), date, ctx.settings.quiz_pass_threshold
            )
        return InsightsInput.from_row(payload)


@strawberry.type
class AnalyticsMutation:
    @strawberry.mutation(
        extensions=[allow(policy.ADMIN)],
        description="Build snapshot_daily_user and the four aggregates for a UTC day, in one transaction "
        "(admin). A built day is E_DUPLICATE_SNAPSHOT unless rebuild: true, which replaces it (audited).",
    )
    async def build_snapshots(self, info: Info, date: dt.date, rebuild: bool = False) -> SnapshotBuild:
        ctx = info.context
        result = await analytics.build_snapshots(
            ctx.db,
            ctx.ops.audit,
            ctx.principal,
            date,
            rebuild=rebuild,
            quiz_pass_threshold=ctx.settings.quiz_pass_threshold,
            request_id=ctx.request_id,
        )
        return SnapshotBuild.from_row(result)


@strawberry.type
class AnalyticsSubscription:
    @strawberry.subscription(
        extensions=[allow(policy.OPERATORS)],
        description="Today's KPIs (as kpis(date: today, scope)) now, then again when they change: at most "
        "one update per second, coalesced. Scope is checked again at every update.",
    )
    async def kpis_updated(
        self, info: Info, scope: ScopeFilterInput | None = None
    ) -> AsyncGenerator[Kpis, None]:
        ctx = info.context
        requested = scope.to_value() if scope else None
        async with ctx.broker.listen(analytics.KPIS_TOPIC) as wakeups:
            async for report in analytics.kpis_updates(ctx.db, ctx.principal, requested, wakeups):
                yield Kpis.from_row(report)
