"""The Insights Engine input of data-layer §5 for one user and one UTC day.

The payload is the user's snapshot plus that day's SalesLab and quiz sessions
(read from session_log: the engine needs the sessions themselves, which no
derived table keeps), with version and scope always attached (AG-DATA-01).

Who may read it: operators for users inside their node; engines (the Insights
engine) within their optional bound. The user's scope that day decides: their
snapshot's, else their latest session's, else the user directory's; and every
session returned must be inside the caller's scope too (a user who moved that day
is seen whole only from a node above both places). Outside the caller's scope -
or unknown - is FORBIDDEN; only an admin learns NOT_FOUND.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal, Role
from app.errors import Forbidden, NotFound
from app.scope import Scope, ensure_can_read, principal_bound
from app.services.analytics.rules import (
    QUIZ,
    SALESLAB,
    Versions,
    quiz_passed_sql,
    ratio,
    upsell_attempted_sql,
    upsell_succeeded_sql,
)
from app.services.analytics.tables import SESSIONS, SNAPSHOTS, USERS
from app.validation import check_id
from persistence.models import SessionLogRow, SnapshotDailyUserRow, UserRow


@dataclass(frozen=True, slots=True)
class UpsellMetrics:
    """§4.4 for one user and day, with the counts behind it."""

    saleslab_sessions: int
    attempted_sessions: int
    successful_sessions: int
    upsell_attempts: int  # the sum of upsellAttempts over the sessions

    @property
    def success_rate(self) -> float | None:
        return ratio(self.successful_sessions, self.attempted_sessions)


@dataclass(frozen=True, slots=True)
class QuizResult:
    session: SessionLogRow
    passed: bool


@dataclass(frozen=True, slots=True)
class InsightsPayload:
    user_id: str
    day: date
    snapshot: SnapshotDailyUserRow | None
    saleslab_sessions: list[SessionLogRow]
    quizzes: list[QuizResult]
    upsell: UpsellMetrics
    versions: Versions
    scope: Scope


def _ensure_can_read(principal: Principal, scope: Scope | None) -> None:
    if principal.role is Role.ENGINE:
        if scope is None or not principal_bound(principal).contains(scope):
            raise Forbidden("not in your scope")
        return
    ensure_can_read(principal, scope)


def _scope(row: Any) -> Scope:
    return Scope(row.region_id, row.country_id, row.branch_id, row.team_id)


async def insights_input(
    session: AsyncSession, principal: Principal, user_id: str, day: date, quiz_pass_threshold: float
) -> InsightsPayload:
    check_id("userId", user_id)
    snapshot = (
        await session.scalars(
            sa.select(SnapshotDailyUserRow).where(SNAPSHOTS.c.day == day, SNAPSHOTS.c.user_id == user_id)
        )
    ).first()
    # The rules are the snapshot build's own SQL predicates, evaluated per session.
    sessions = (
        await session.execute(
            sa.select(
                SessionLogRow,
                sa.func.coalesce(quiz_passed_sql(SESSIONS, quiz_pass_threshold), False).label("passed"),
                sa.func.coalesce(upsell_attempted_sql(SESSIONS), False).label("attempted"),
                sa.func.coalesce(upsell_succeeded_sql(SESSIONS), False).label("succeeded"),
            )
            .where(
                SESSIONS.c.day == day,
                SESSIONS.c.user_id == user_id,
                SESSIONS.c.engine.in_((SALESLAB, QUIZ)),
            )
            .order_by(SESSIONS.c.end_time, SESSIONS.c.seq)
        )
    ).all()
    latest = sessions[-1][0] if sessions else None
    source: Any = snapshot or latest
    if source is None:
        source = (await session.scalars(sa.select(UserRow).where(USERS.c.user_id == user_id))).first()
    scope = _scope(source) if source is not None else None
    _ensure_can_read(principal, scope)
    if scope is None:
        raise NotFound("no such user, and no data for that day")
    # Records of one day may carry other scopes (the user moved): each one must be readable.
    for other in {_scope(row[0]) for row in sessions} - {scope}:
        _ensure_can_read(principal, other)
    saleslab = [row for row in sessions if row[0].engine == SALESLAB]
    if snapshot is not None:
        versions = Versions(
            snapshot.latest_module_version, snapshot.latest_scenario_version, snapshot.latest_prompt_version
        )
    elif latest is not None:
        versions = Versions(latest.module_version, latest.scenario_version, latest.prompt_version)
    else:
        versions = Versions()
    return InsightsPayload(
        user_id=user_id,
        day=day,
        snapshot=snapshot,
        saleslab_sessions=[row[0] for row in saleslab],
        quizzes=[QuizResult(row[0], bool(row.passed)) for row in sessions if row[0].engine == QUIZ],
        upsell=UpsellMetrics(
            saleslab_sessions=len(saleslab),
            attempted_sessions=sum(1 for row in saleslab if row.attempted),
            successful_sessions=sum(1 for row in saleslab if row.succeeded),
            upsell_attempts=sum(row[0].upsell_attempts or 0 for row in saleslab),
        ),
        versions=versions,
        scope=scope,
    )
