"""The analytics rules in one place: levels, KPI formulas, what counts as passed or earned.

The snapshot build evaluates these rules in SQL (set-based, over a day of raw
logs); the SQL expressions that encode a rule live here beside its Python
counterpart so that the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app.scope import LEVELS


class Level(StrEnum):
    """A level of the organisation tree, coarsest first (same order as ``app.scope.LEVELS``)."""

    REGION = "region"
    COUNTRY = "country"
    BRANCH = "branch"
    TEAM = "team"

    @property
    def depth(self) -> int:
        return LEVELS.index(self.value)

    @property
    def parents(self) -> tuple[Level, ...]:
        return tuple(Level(name) for name in LEVELS[: self.depth])

    @property
    def column(self) -> str:
        return f"{self.value}_id"


class RankBy(StrEnum):
    """§4.5 ranking keys; the value is the aggregate column ranked on."""

    AVG_XP_TOTAL = "avg_xp_total"
    MODULE_COMPLETION_RATE = "module_completion_rate"
    QUIZ_PASS_RATE = "quiz_pass_rate"


# Event types and engines the snapshot counts (data conventions of issue 3).
LOGIN = "login"
MODULE_START = "module_start"
MODULE_COMPLETE = "module_complete"
REWARD_CLAIM = "reward_claim"
QUIZ = "quiz"
SALESLAB = "saleslab"

# A reward_claim's action is "xp:<n>" (n: 1-9 digits, xp gained) or "badge:<id>" (badge earned).
# Anything else in a reward_claim is ignored by the snapshot, never an error in a nightly build.
XP_ACTION = r"^xp:[0-9]{1,9}$"
XP_PREFIX = "xp:"
BADGE_PREFIX = "badge:"


def ratio(numerator: int, denominator: int) -> float | None:
    """A KPI rate: null when nothing was attempted, never a division error."""
    return numerator / denominator if denominator > 0 else None


def ratio_sql(numerator: Any, denominator: Any) -> ColumnElement[Any]:
    """``ratio`` in SQL: the same IEEE division, so stored and re-derived rates compare equal."""
    return sa.case((denominator > 0, sa.cast(numerator, sa.Float) / denominator), else_=None)


def is_quiz_sql(session_log: sa.Table) -> ColumnElement[bool]:
    """§4.3's #completed: every quiz session counts as one completed quiz."""
    return session_log.c.engine == QUIZ


def quiz_passed_sql(session_log: sa.Table, threshold: float) -> ColumnElement[bool]:
    """§4.3's #passed: correctAnswers / turnCount >= the threshold.

    turnCount is the number of questions answered; a quiz with no questions or
    without correctAnswers does not pass. Dividing (rather than comparing
    ``correct >= threshold * turns``) keeps 7/10 >= 0.7 true in floating point;
    NULLIF keeps PostgreSQL, which need not short-circuit AND, from dividing by zero.
    """
    c = session_log.c
    score = sa.cast(c.correct_answers, sa.Float) / sa.func.nullif(c.turn_count, 0)
    return sa.and_(
        is_quiz_sql(session_log), sa.func.coalesce(score >= sa.literal(threshold, sa.Float), False)
    )


def is_saleslab_sql(session_log: sa.Table) -> ColumnElement[bool]:
    return session_log.c.engine == SALESLAB


def upsell_attempted_sql(session_log: sa.Table) -> ColumnElement[bool]:
    """§4.4's denominator: a SalesLab session with upsellAttempts > 0."""
    return sa.and_(is_saleslab_sql(session_log), sa.func.coalesce(session_log.c.upsell_attempts, 0) > 0)


def upsell_succeeded_sql(session_log: sa.Table) -> ColumnElement[bool]:
    """§4.4's numerator: a SalesLab session with upsellSuccess = true."""
    return sa.and_(is_saleslab_sql(session_log), sa.func.coalesce(session_log.c.upsell_success, False))


def quiz_score(correct_answers: int | None, turn_count: int) -> float | None:
    return ratio(correct_answers, turn_count) if correct_answers is not None else None


@dataclass(frozen=True, slots=True)
class Counters:
    """The summed counters behind every KPI and aggregate (§3.5 rates are derived from them)."""

    users: int = 0
    active_users: int = 0
    module_started: int = 0
    module_completed: int = 0
    quiz_completed: int = 0
    quiz_passed: int = 0
    saleslab_sessions: int = 0
    upsell_attempts: int = 0
    upsell_successes: int = 0
    xp_gained: int = 0
    xp_total_sum: int = 0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, row: Any) -> Counters:
        # SUM() over no rows is NULL: nothing counted.
        return cls(**{name: int(getattr(row, name) or 0) for name in cls.names()})

    def __add__(self, other: Counters) -> Counters:
        return Counters(**{name: getattr(self, name) + getattr(other, name) for name in self.names()})

    # §4.2-4.4 and §3.5, from the counters only.
    @property
    def module_completion_rate(self) -> float | None:
        return ratio(self.module_completed, self.module_started)

    @property
    def quiz_pass_rate(self) -> float | None:
        return ratio(self.quiz_passed, self.quiz_completed)

    @property
    def upsell_success_rate(self) -> float | None:
        """§4.4 pooled over sessions; §3.5's avgUpsellSuccessRate is this same per-session average."""
        return ratio(self.upsell_successes, self.upsell_attempts)

    @property
    def avg_xp_total(self) -> float | None:
        return ratio(self.xp_total_sum, self.users)


@dataclass(frozen=True, slots=True)
class Versions:
    """A version context (AG-DATA-06): the three versions analytics were measured under."""

    module_version: str | None = None
    scenario_version: str | None = None
    prompt_version: str | None = None
