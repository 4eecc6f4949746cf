"""User Performance Monitor types: the aggregated profile (upm §1) and the log inputs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.services.upm.profile import LearningView, MissionView, ProfileView, QuizView, ScenarioView
from app.services.upm.recording import LogAnswer
from graphql_schema.types.inputs import Record, record_input
from graphql_schema.types.logs import LogScopeInput, LogVersionInput

REQUIRED = "Required."


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


@strawberry.type(description="upm §1 scenario: SalesLab role-play sessions.")
class ScenarioPerformance:
    total_sessions: int
    avg_turns: float | None
    upsell_success_rate: float | None
    avg_objections: float | None
    behavior_score: float | None = strawberry.field(
        description="Aggregated per the active UPM ruleset (mean or EMA of session scores)."
    )

    @classmethod
    def from_row(cls, view: ScenarioView) -> ScenarioPerformance:
        return cls(
            total_sessions=view.total_sessions,
            avg_turns=view.avg_turns,
            upsell_success_rate=view.upsell_success_rate,
            avg_objections=view.avg_objections,
            behavior_score=view.behavior_score,
        )


@strawberry.type(description="upm §1 quiz.")
class QuizPerformance:
    total_quizzes: int
    avg_accuracy: float | None
    strengths: list[str]
    weaknesses: list[str]

    @classmethod
    def from_row(cls, view: QuizView) -> QuizPerformance:
        return cls(
            total_quizzes=view.total_quizzes,
            avg_accuracy=view.avg_accuracy,
            strengths=view.strengths,
            weaknesses=view.weaknesses,
        )


@strawberry.type(description="upm §1 learning.")
class LearningPerformance:
    completed_modules: int
    repeat_count: int
    engagement_score: float | None

    @classmethod
    def from_row(cls, view: LearningView) -> LearningPerformance:
        return cls(
            completed_modules=view.completed_modules,
            repeat_count=view.repeat_count,
            engagement_score=view.engagement_score,
        )


@strawberry.type(description="upm §1 missions.")
class MissionPerformance:
    completed: int
    failed: int
    active: int

    @classmethod
    def from_row(cls, view: MissionView) -> MissionPerformance:
        return cls(completed=view.completed, failed=view.failed, active=view.active)


@strawberry.type(description="One skill's mastery in [0, 1].")
class SkillLevel:
    skill_id: str
    mastery: float


@strawberry.type(description="upm §1 skill: mastery per skill in [0, 1].")
class SkillMastery:
    upsell: float
    objection_handling: float
    product_knowledge: float
    _all: strawberry.Private[dict[str, float]]

    @strawberry.field(description="Every skill, by id, sorted.")
    def skills(self) -> list[SkillLevel]:
        """Built when asked for: a dashboard page reads the three named skills only."""
        return [SkillLevel(skill_id=k, mastery=v) for k, v in sorted(self._all.items())]

    @classmethod
    def from_row(cls, skills: dict[str, float]) -> SkillMastery:
        return cls(
            upsell=skills.get("upsell", 0.0),
            objection_handling=skills.get("objection_handling", 0.0),
            product_knowledge=skills.get("product_knowledge", 0.0),
            _all=skills,
        )


@strawberry.type(description="The aggregated UPM profile (upm §1, §7).")
class Performance:
    user_id: str
    scenario: ScenarioPerformance
    quiz: QuizPerformance
    learning: LearningPerformance
    missions: MissionPerformance
    skill: SkillMastery
    updated_at: int | None = strawberry.field(description="Epoch seconds of the last accepted log.")

    @classmethod
    def from_row(cls, view: ProfileView) -> Performance:
        return cls(
            user_id=view.user_id,
            scenario=ScenarioPerformance.from_row(view.scenario),
            quiz=QuizPerformance.from_row(view.quiz),
            learning=LearningPerformance.from_row(view.learning),
            missions=MissionPerformance.from_row(view.missions),
            skill=SkillMastery.from_row(view.skill),
            updated_at=_epoch(view.updated_at),
        )


@strawberry.type(description="The change one log made to a skill.")
class SkillDelta:
    skill_id: str
    delta: float


@strawberry.type(description="An accepted log. A retry with the same logId returns the first answer.")
class LogResult:
    user_id: str
    log_id: str | None
    record_id: str = strawberry.field(description="The id of the data-layer record it was stored as.")
    duplicate: bool = strawberry.field(description="True when this logId was already accepted.")
    skill_deltas: list[SkillDelta]

    @classmethod
    def from_row(cls, answer: LogAnswer) -> LogResult:
        return cls(
            user_id=answer.user_id,
            log_id=answer.log_id,
            record_id=answer.record_id,
            duplicate=answer.duplicate,
            skill_deltas=[SkillDelta(skill_id=k, delta=v) for k, v in sorted(answer.skill_deltas.items())],
        )


# Inputs: nullable at the GraphQL level so that the shared validator answers with the
# contract's codes (E_SCOPE_MISSING, E_VERSION_MISSING) instead of a generic GraphQL error.
# The four log inputs reach their resolvers as records (graphql_schema.types.inputs).


@record_input(description="upm §2.1, plus version and scope.")
class ScenarioLogInput:
    user_id: str | None = strawberry.UNSET
    scenario_id: str | None = strawberry.UNSET
    turns: int | None = strawberry.UNSET
    upsell_success: bool | None = strawberry.UNSET
    objections: int | None = strawberry.UNSET
    behavior_score: float | None = strawberry.UNSET
    version: LogVersionInput | None = strawberry.UNSET
    scope: LogScopeInput | None = strawberry.UNSET
    log_id: str | None = strawberry.field(default=strawberry.UNSET, description="Optional idempotency key.")


@record_input(description="upm §3.1, plus version and scope.")
class QuizLogInput:
    user_id: str | None = strawberry.UNSET
    quiz_id: str | None = strawberry.UNSET
    correct: int | None = strawberry.UNSET
    total: int | None = strawberry.UNSET
    topic: str | None = strawberry.UNSET
    difficulty: int | None = strawberry.UNSET
    version: LogVersionInput | None = strawberry.UNSET
    scope: LogScopeInput | None = strawberry.UNSET
    log_id: str | None = strawberry.field(default=strawberry.UNSET, description="Optional idempotency key.")


@record_input(description="upm §4.1, plus version and scope.")
class LearningLogInput:
    user_id: str | None = strawberry.UNSET
    module_id: str | None = strawberry.UNSET
    duration_minutes: float | None = strawberry.UNSET
    completed: bool | None = strawberry.UNSET
    version: LogVersionInput | None = strawberry.UNSET
    scope: LogScopeInput | None = strawberry.UNSET
    log_id: str | None = strawberry.field(default=strawberry.UNSET, description="Optional idempotency key.")


@record_input(description="upm §5.1, plus version and scope.")
class MissionLogInput:
    user_id: str | None = strawberry.UNSET
    mission_id: str | None = strawberry.UNSET
    success: bool | None = strawberry.UNSET
    score: float | None = strawberry.UNSET
    version: LogVersionInput | None = strawberry.UNSET
    scope: LogScopeInput | None = strawberry.UNSET
    log_id: str | None = strawberry.field(default=strawberry.UNSET, description="Optional idempotency key.")


@strawberry.input(description="upm §6.1 (admin only: engines never set mastery directly).")
class SkillUpdateInput:
    user_id: str
    skill_id: str
    delta: float
    source: str


# What the log mutations take: the schema shows the input, the resolver gets its record.
ScenarioLog = Annotated[Record, strawberry.argument(graphql_type=ScenarioLogInput)]
QuizLog = Annotated[Record, strawberry.argument(graphql_type=QuizLogInput)]
LearningLog = Annotated[Record, strawberry.argument(graphql_type=LearningLogInput)]
MissionLog = Annotated[Record, strawberry.argument(graphql_type=MissionLogInput)]
