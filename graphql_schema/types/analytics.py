"""Analytics types: snapshots (§3.4), aggregates (§3.5), KPIs (§4), the Insights input (§5).

Every analytics answer carries the versions it was measured under (AG-DATA-06):
``versionContext`` on KPIs, ranking entries and the Insights input, ``version``
on snapshot and aggregate rows (the spec's own field name for those shapes).
"""

from __future__ import annotations

import datetime as dt

import strawberry

from app.scope import Scope, ScopeFilter
from app.services.analytics import (
    BuildResult,
    InsightsPayload,
    KpiReport,
    Level,
    RankBy,
    RankedUnit,
    UpsellMetrics,
    Versions,
    scope_of,
    versions_of,
)
from app.services.analytics.insights import QuizResult
from app.services.analytics.rules import quiz_score
from app.times import as_utc
from graphql_schema.types.common import ScopeType
from graphql_schema.types.logs import LogVersion, SessionLog
from persistence.models import AggregateRow, SnapshotDailyUserRow

LevelType = strawberry.enum(Level, name="Level", description="A level of the organisation tree.")
RankByType = strawberry.enum(RankBy, name="RankBy", description="What §4.5 ranks units by.")


@strawberry.type(name="VersionContext", description="The versions an analytics figure was measured under.")
class VersionContextType:
    module_version: str | None
    scenario_version: str | None
    prompt_version: str | None

    @classmethod
    def from_row(cls, versions: Versions) -> VersionContextType:
        return cls(
            module_version=versions.module_version,
            scenario_version=versions.scenario_version,
            prompt_version=versions.prompt_version,
        )


@strawberry.type(description="A unit's place in the organisation; ids below its level are null.")
class ScopePath:
    region_id: str | None
    country_id: str | None
    branch_id: str | None
    team_id: str | None

    @classmethod
    def from_row(cls, scope: ScopeFilter) -> ScopePath:
        return cls(
            region_id=scope.region_id,
            country_id=scope.country_id,
            branch_id=scope.branch_id,
            team_id=scope.team_id,
        )


@strawberry.type(description="§4.1: distinct users with a login that day.")
class CountKpi:
    value: int
    version_context: VersionContextType


@strawberry.type(description="A rate KPI: numerator / denominator, null when the denominator is 0.")
class RateKpi:
    value: float | None
    numerator: int
    denominator: int
    version_context: VersionContextType


@strawberry.type(description="§4.1-4.4 for one unit, or the whole organisation, on one UTC day.")
class Kpis:
    date: dt.date
    level: LevelType | None = strawberry.field(description="Null: the whole organisation.")  # type: ignore[valid-type]
    scope: ScopePath
    active_users: CountKpi
    module_completion_rate: RateKpi
    quiz_pass_rate: RateKpi
    upsell_success_rate: RateKpi
    version_context: VersionContextType
    final: bool = strawberry.field(
        description="True once buildSnapshots has finalised the day; false: live counters (provisional)."
    )
    stale: bool = strawberry.field(
        description="A final day that received records after its build: buildSnapshots(rebuild: true) "
        "makes it current."
    )
    as_of: dt.datetime | None = strawberry.field(
        description="When the figures were made: the build, or the live deriver's latest fold."
    )

    @classmethod
    def from_row(cls, report: KpiReport) -> Kpis:
        c = report.counters
        versions = VersionContextType.from_row(report.versions)

        def rate(numerator: int, denominator: int, value: float | None) -> RateKpi:
            return RateKpi(
                value=value, numerator=numerator, denominator=denominator, version_context=versions
            )

        return cls(
            date=report.day,
            level=report.level,
            scope=ScopePath.from_row(report.scope),
            active_users=CountKpi(value=c.active_users, version_context=versions),
            module_completion_rate=rate(c.module_completed, c.module_started, c.module_completion_rate),
            quiz_pass_rate=rate(c.quiz_passed, c.quiz_completed, c.quiz_pass_rate),
            upsell_success_rate=rate(c.upsell_successes, c.upsell_attempts, c.upsell_success_rate),
            version_context=versions,
            final=report.final,
            stale=report.stale,
            as_of=as_utc(report.as_of) if report.as_of is not None else None,
        )


@strawberry.type(description="§3.5: one unit's day, from its users' snapshots only.")
class Aggregate:
    date: dt.date
    level: LevelType  # type: ignore[valid-type]
    scope_id: str
    scope: ScopePath
    active_users: int = strawberry.field(description="Users with a login that day (§4.1).")
    users: int = strawberry.field(description="Users with any record that day (a snapshot).")
    total_sales_lab_sessions: int
    module_completion_rate: float | None
    quiz_pass_rate: float | None
    avg_upsell_success_rate: float | None = strawberry.field(
        description="Per attempted session: upsellSuccesses / upsellAttempts (§4.4 over the unit)."
    )
    avg_xp_total: float | None = strawberry.field(description="Mean xpTotal over the unit's snapshots.")
    module_started: int
    module_completed: int
    quiz_completed: int
    quiz_passed: int
    upsell_attempts: int = strawberry.field(description="SalesLab sessions with upsellAttempts > 0.")
    upsell_successes: int = strawberry.field(description="SalesLab sessions with upsellSuccess = true.")
    version: VersionContextType = strawberry.field(
        description="The versions of the unit's latest record that day (as a snapshot's are the user's)."
    )
    built_at: dt.datetime = strawberry.field(
        description="When the row was built; for a provisional row, the live deriver's latest fold."
    )
    final: bool = strawberry.field(
        description="False: the day is not built yet, the row is summed from the live counters."
    )

    @classmethod
    def from_row(cls, level: Level, row: AggregateRow, final: bool = True) -> Aggregate:
        return cls(
            date=row.day,
            level=level,
            scope_id=getattr(row, level.column),
            scope=ScopePath.from_row(scope_of(level, row)),
            active_users=row.active_users,
            users=row.users,
            total_sales_lab_sessions=row.saleslab_sessions,
            module_completion_rate=row.module_completion_rate,
            quiz_pass_rate=row.quiz_pass_rate,
            avg_upsell_success_rate=row.avg_upsell_success_rate,
            avg_xp_total=row.avg_xp_total,
            module_started=row.module_started,
            module_completed=row.module_completed,
            quiz_completed=row.quiz_completed,
            quiz_passed=row.quiz_passed,
            upsell_attempts=row.upsell_attempts,
            upsell_successes=row.upsell_successes,
            version=VersionContextType.from_row(versions_of(row)),
            built_at=as_utc(row.built_at),
            final=final,
        )


@strawberry.type(description="§4.5: a unit's place; equal values share a rank, null values are unranked.")
class RankingEntry:
    rank: int | None
    scope_id: str
    value: float | None
    version_context: VersionContextType
    aggregate: Aggregate

    @classmethod
    def from_row(cls, level: Level, unit: RankedUnit) -> RankingEntry:
        aggregate = Aggregate.from_row(level, unit.row, unit.final)
        return cls(
            rank=unit.rank,
            scope_id=aggregate.scope_id,
            value=unit.value,
            version_context=aggregate.version,
            aggregate=aggregate,
        )


@strawberry.type(
    name="SnapshotVersion", description="§3.4: the versions of the user's latest record that day."
)
class SnapshotVersionType:
    latest_module_version: str | None
    latest_scenario_version: str | None
    latest_prompt_version: str | None


@strawberry.type(description="§3.4: one user's UTC day. xpTotal and badgesOwned are cumulative.")
class DailyUserSnapshot:
    date: dt.date
    user_id: str
    logged_in: bool
    module_started: int
    module_completed: int
    quiz_completed: int
    quiz_passed: int
    saleslab_sessions: int
    upsell_attempts: int
    upsell_successes: int
    xp_gained: int
    xp_total: int
    badges_owned: list[str]
    version: SnapshotVersionType
    scope: ScopeType

    @classmethod
    def from_row(cls, row: SnapshotDailyUserRow) -> DailyUserSnapshot:
        return cls(
            date=row.day,
            user_id=row.user_id,
            logged_in=row.logged_in,
            module_started=row.module_started,
            module_completed=row.module_completed,
            quiz_completed=row.quiz_completed,
            quiz_passed=row.quiz_passed,
            saleslab_sessions=row.saleslab_sessions,
            upsell_attempts=row.upsell_attempts,
            upsell_successes=row.upsell_successes,
            xp_gained=row.xp_gained,
            xp_total=row.xp_total,
            badges_owned=list(row.badges_owned),
            version=SnapshotVersionType(
                latest_module_version=row.latest_module_version,
                latest_scenario_version=row.latest_scenario_version,
                latest_prompt_version=row.latest_prompt_version,
            ),
            scope=ScopeType.from_row(Scope(row.region_id, row.country_id, row.branch_id, row.team_id)),
        )


@strawberry.type(description="One quiz session: score = correctAnswers / turnCount; passed by the threshold.")
class QuizSessionPerformance:
    session_id: str
    start_time: dt.datetime
    end_time: dt.datetime
    duration_sec: float
    outcome: str | None
    turn_count: int
    correct_answers: int | None
    score: float | None
    passed: bool
    version: LogVersion

    @classmethod
    def from_row(cls, quiz: QuizResult) -> QuizSessionPerformance:
        row = quiz.session
        return cls(
            session_id=row.session_id,
            start_time=as_utc(row.start_time),
            end_time=as_utc(row.end_time),
            duration_sec=row.duration_sec,
            outcome=row.outcome,
            turn_count=row.turn_count,
            correct_answers=row.correct_answers,
            score=quiz_score(row.correct_answers, row.turn_count),
            passed=quiz.passed,
            version=LogVersion.from_row(row),
        )


@strawberry.type(name="UpsellMetrics", description="§4.4 for one user's day.")
class UpsellMetricsType:
    saleslab_sessions: int
    attempted_sessions: int = strawberry.field(description="SalesLab sessions with upsellAttempts > 0.")
    successful_sessions: int = strawberry.field(description="SalesLab sessions with upsellSuccess = true.")
    upsell_attempts: int = strawberry.field(description="The sum of upsellAttempts over the sessions.")
    success_rate: float | None

    @classmethod
    def from_row(cls, metrics: UpsellMetrics) -> UpsellMetricsType:
        return cls(
            saleslab_sessions=metrics.saleslab_sessions,
            attempted_sessions=metrics.attempted_sessions,
            successful_sessions=metrics.successful_sessions,
            upsell_attempts=metrics.upsell_attempts,
            success_rate=metrics.success_rate,
        )


@strawberry.type(description="§5: what the Insights Engine receives for one user and UTC day.")
class InsightsInput:
    user_id: str
    date: dt.date
    user_performance_snapshot: DailyUserSnapshot | None = strawberry.field(
        description="Null until buildSnapshots has run for that day (or the user had no record)."
    )
    saleslab_session_logs: list[SessionLog]
    quiz_performance_log: list[QuizSessionPerformance]
    upsell_metrics: UpsellMetricsType
    version_context: VersionContextType
    scope_context: ScopeType

    @classmethod
    def from_row(cls, payload: InsightsPayload) -> InsightsInput:
        return cls(
            user_id=payload.user_id,
            date=payload.day,
            user_performance_snapshot=(
                DailyUserSnapshot.from_row(payload.snapshot) if payload.snapshot is not None else None
            ),
            saleslab_session_logs=[SessionLog.from_row(row) for row in payload.saleslab_sessions],
            quiz_performance_log=[QuizSessionPerformance.from_row(quiz) for quiz in payload.quizzes],
            upsell_metrics=UpsellMetricsType.from_row(payload.upsell),
            version_context=VersionContextType.from_row(payload.versions),
            scope_context=ScopeType.from_row(payload.scope),
        )


@strawberry.type(description="What buildSnapshots built.")
class SnapshotBuild:
    date: dt.date
    rebuilt: bool
    snapshots: int
    regions: int
    countries: int
    branches: int
    teams: int
    built_at: dt.datetime
    built_by: str
    later_days_to_rebuild: list[dt.date] = strawberry.field(
        description="Built days after this one: their cumulative xpTotal/badgesOwned start from this day."
    )

    @classmethod
    def from_row(cls, result: BuildResult) -> SnapshotBuild:
        return cls(
            date=result.day,
            rebuilt=result.rebuilt,
            snapshots=result.snapshots,
            regions=result.aggregates[Level.REGION],
            countries=result.aggregates[Level.COUNTRY],
            branches=result.aggregates[Level.BRANCH],
            teams=result.aggregates[Level.TEAM],
            built_at=as_utc(result.built_at),
            built_by=result.built_by,
            later_days_to_rebuild=result.later_days,
        )
