"""Reading the aggregated profile (upm §1, §7): a fixed number of statements for any
number of users, and the same cost whatever the length of their history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.upm import rules as formulas
from app.services.upm.ruleset import SKILLS, UpmRuleset
from persistence.fast_read import Read
from persistence.models.upm import UpmMissionRow, UpmModuleRow, UpmProfileRow, UpmSkillRow, UpmTopicRow


@dataclass(frozen=True, slots=True)
class ScenarioView:
    total_sessions: int
    avg_turns: float | None
    upsell_success_rate: float | None
    avg_objections: float | None
    behavior_score: float | None


@dataclass(frozen=True, slots=True)
class QuizView:
    total_quizzes: int
    avg_accuracy: float | None
    strengths: list[str]
    weaknesses: list[str]


@dataclass(frozen=True, slots=True)
class LearningView:
    completed_modules: int
    repeat_count: int
    engagement_score: float | None


@dataclass(frozen=True, slots=True)
class MissionView:
    completed: int
    failed: int
    active: int


@dataclass(frozen=True, slots=True)
class ProfileView:
    user_id: str
    scenario: ScenarioView
    quiz: QuizView
    learning: LearningView
    missions: MissionView
    skill: dict[str, float]
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProfileCounters:
    """One ``upm_profile`` row as plain data, its columns in table order: a page reads 100 of
    them, and a table model costs several times more to make and to read (SQLAlchemy's
    instrumented attributes)."""

    user_id: str
    scenario_sessions: int = 0
    scenario_turns: int = 0
    scenario_upsell_successes: int = 0
    scenario_objections: int = 0
    behavior_sum: float = 0.0
    behavior_count: int = 0
    behavior_ema: float | None = None
    quiz_count: int = 0
    quiz_accuracy_sum: float = 0.0
    learning_logs: int = 0
    learning_completed_logs: int = 0
    learning_minutes: float = 0.0
    missions_completed: int = 0
    missions_failed: int = 0
    updated_at: datetime | None = None


@dataclass(slots=True)
class ProfileRows:
    """Everything stored about one user's performance."""

    profile: ProfileCounters | None = None
    topics: list[tuple[str, int, int, int]] = field(default_factory=list)
    skills: dict[str, float] = field(default_factory=dict)
    modules: int = 0
    completed_modules: int = 0
    active_missions: int = 0


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def build(user_id: str, rows: ProfileRows, rules: UpmRuleset) -> ProfileView:
    p = rows.profile or ProfileCounters(user_id)
    behavior = (
        p.behavior_ema
        if rules.behavior_score.aggregation == "ema"
        else _ratio(p.behavior_sum, p.behavior_count)
    )
    strengths, weaknesses = formulas.strengths_and_weaknesses(rows.topics, rules)
    skills = {skill: rows.skills.get(skill, 0.0) for skill in SKILLS}
    skills.update(rows.skills)
    return ProfileView(
        user_id=user_id,
        scenario=ScenarioView(
            total_sessions=p.scenario_sessions,
            avg_turns=_ratio(p.scenario_turns, p.scenario_sessions),
            upsell_success_rate=_ratio(p.scenario_upsell_successes, p.scenario_sessions),
            avg_objections=_ratio(p.scenario_objections, p.scenario_sessions),
            behavior_score=behavior,
        ),
        quiz=QuizView(
            total_quizzes=p.quiz_count,
            avg_accuracy=_ratio(p.quiz_accuracy_sum, p.quiz_count),
            strengths=strengths,
            weaknesses=weaknesses,
        ),
        learning=LearningView(
            completed_modules=rows.completed_modules,
            repeat_count=p.learning_logs - rows.modules,
            engagement_score=formulas.engagement(
                p.learning_logs, p.learning_completed_logs, p.learning_minutes
            ),
        ),
        missions=MissionView(
            completed=p.missions_completed, failed=p.missions_failed, active=rows.active_missions
        ),
        skill=skills,
        updated_at=rows.profile.updated_at if rows.profile else None,
    )


# Built once (``persistence.fast_read``): compiled once for PostgreSQL, and SQLAlchemy memoizes
# the SQLite statements' cache keys on the objects (a third of a profile read otherwise).
_PROFILE = UpmProfileRow.__table__  # type: ignore[attr-defined]
_TOPIC = UpmTopicRow.__table__.c  # type: ignore[attr-defined]
_SKILL = UpmSkillRow.__table__.c  # type: ignore[attr-defined]
_MODULE = UpmModuleRow.__table__.c  # type: ignore[attr-defined]
_MISSION = UpmMissionRow.__table__.c  # type: ignore[attr-defined]
if tuple(column.name for column in _PROFILE.c) != tuple(ProfileCounters.__dataclass_fields__):
    raise RuntimeError("ProfileCounters must list upm_profile's columns in their order")
_PROFILES_BY_IDS = Read(lambda ids_in: sa.select(_PROFILE).where(ids_in(_PROFILE.c.user_id)))
_TOPICS_BY_IDS = Read(
    lambda ids_in: sa.select(
        _TOPIC.user_id, _TOPIC.topic, _TOPIC.quizzes, _TOPIC.correct, _TOPIC.total
    ).where(ids_in(_TOPIC.user_id))
)
_SKILLS_BY_IDS = Read(
    lambda ids_in: sa.select(_SKILL.user_id, _SKILL.skill_id, _SKILL.mastery).where(ids_in(_SKILL.user_id))
)
_COUNTS_BY_IDS = Read(
    lambda ids_in: sa.union_all(
        sa.select(
            _MODULE.user_id,
            sa.literal("module").label("kind"),
            sa.func.count().label("n"),
            sa.func.sum(sa.case((_MODULE.completions > 0, 1), else_=0)).label("k"),
        )
        .where(ids_in(_MODULE.user_id))
        .group_by(_MODULE.user_id),
        sa.select(
            _MISSION.user_id,
            sa.literal("mission"),
            sa.func.count(),
            sa.func.sum(sa.case((_MISSION.last_success.is_(False), 1), else_=0)),
        )
        .where(ids_in(_MISSION.user_id))
        .group_by(_MISSION.user_id),
    )
)


async def rows_by_user_ids(session: AsyncSession, user_ids: Sequence[str]) -> dict[str, ProfileRows]:
    """Four statements for any number of users (profiles, topics, skills, module/mission counts)."""
    found: dict[str, ProfileRows] = {user_id: ProfileRows() for user_id in user_ids}
    if not user_ids:
        return found
    ids = {"ids": list(found)}
    for row in await _PROFILES_BY_IDS.all(session, ids):
        counters = ProfileCounters(*row)
        found[counters.user_id].profile = counters
    for user_id, name, quizzes, correct, total in await _TOPICS_BY_IDS.all(session, ids):
        found[user_id].topics.append((name, quizzes, correct, total))
    for user_id, skill_id, mastery in await _SKILLS_BY_IDS.all(session, ids):
        found[user_id].skills[skill_id] = mastery
    for user_id, kind, n, k in await _COUNTS_BY_IDS.all(session, ids):
        if kind == "module":
            found[user_id].modules, found[user_id].completed_modules = int(n), int(k or 0)
        else:
            found[user_id].active_missions = int(k or 0)
    return found
