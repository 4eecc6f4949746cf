"""The four UPM log payloads (upm §2.1, §3.1, §4.1, §5.1), checked field by field.

Version and scope are checked by the data layer's validator (the same codes as
every raw log); this module checks what the UPM adds: ids, counts, scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.errors import SchemaMismatch
from app.validation import check_id

INT_MAX = 2**31 - 1


def _id(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None:
        raise SchemaMismatch(f"{name} is required", field=name)
    if type(value) is not str:
        raise SchemaMismatch(f"{name} must be a string", field=name)
    return check_id(name, value)


def _count(payload: dict[str, Any], name: str, maximum: int = INT_MAX) -> int:
    value = payload.get(name)
    if type(value) is not int:
        raise SchemaMismatch(f"{name} must be an integer", field=name)
    if not 0 <= value <= maximum:
        raise SchemaMismatch(f"{name} must be between 0 and {maximum}", field=name)
    return value


def _number(value: object) -> float | None:
    """A finite JSON number (booleans are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _unit(payload: dict[str, Any], name: str) -> float:
    value = _number(payload.get(name))
    if value is None or not 0 <= value <= 1:
        raise SchemaMismatch(f"{name} must be a number in [0, 1]", field=name)
    return value


def _bool(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name)
    if type(value) is not bool:
        raise SchemaMismatch(f"{name} must be true or false", field=name)
    return value


def _minutes(payload: dict[str, Any], name: str) -> float:
    value = _number(payload.get(name))
    if value is None or not 0 <= value <= 24 * 60:
        raise SchemaMismatch(f"{name} must be a number of minutes between 0 and 1440", field=name)
    return value


def _only(payload: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise SchemaMismatch(f"unknown field {unknown[0]}", field=unknown[0])


COMMON = frozenset({"userId", "version", "scope", "logId"})


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    user_id: str
    scenario_id: str
    turns: int
    upsell_success: bool
    objections: int
    behavior_score: float


@dataclass(frozen=True, slots=True)
class QuizResult:
    user_id: str
    quiz_id: str
    correct: int
    total: int
    topic: str
    difficulty: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


@dataclass(frozen=True, slots=True)
class LearningResult:
    user_id: str
    module_id: str
    duration_minutes: float
    completed: bool


@dataclass(frozen=True, slots=True)
class MissionResult:
    user_id: str
    mission_id: str
    success: bool
    score: float


Result = ScenarioResult | QuizResult | LearningResult | MissionResult


def scenario(payload: dict[str, Any]) -> ScenarioResult:
    _only(payload, COMMON | {"scenarioId", "turns", "upsellSuccess", "objections", "behaviorScore"})
    return ScenarioResult(
        user_id=_id(payload, "userId"),
        scenario_id=_id(payload, "scenarioId"),
        turns=_count(payload, "turns", 10_000),
        upsell_success=_bool(payload, "upsellSuccess"),
        objections=_count(payload, "objections", 10_000),
        behavior_score=_unit(payload, "behaviorScore"),
    )


def quiz(payload: dict[str, Any]) -> QuizResult:
    _only(payload, COMMON | {"quizId", "correct", "total", "topic", "difficulty"})
    total = _count(payload, "total", 10_000)
    correct = _count(payload, "correct", 10_000)
    if total == 0:
        raise SchemaMismatch("total must be at least 1", field="total")
    if correct > total:
        raise SchemaMismatch("correct must not exceed total", field="correct")
    return QuizResult(
        user_id=_id(payload, "userId"),
        quiz_id=_id(payload, "quizId"),
        correct=correct,
        total=total,
        topic=_id(payload, "topic"),
        difficulty=_count(payload, "difficulty", 10),
    )


def learning(payload: dict[str, Any]) -> LearningResult:
    _only(payload, COMMON | {"moduleId", "durationMinutes", "completed"})
    return LearningResult(
        user_id=_id(payload, "userId"),
        module_id=_id(payload, "moduleId"),
        duration_minutes=_minutes(payload, "durationMinutes"),
        completed=_bool(payload, "completed"),
    )


def mission(payload: dict[str, Any]) -> MissionResult:
    _only(payload, COMMON | {"missionId", "success", "score"})
    return MissionResult(
        user_id=_id(payload, "userId"),
        mission_id=_id(payload, "missionId"),
        success=_bool(payload, "success"),
        score=_unit(payload, "score"),
    )


def log_id(payload: dict[str, Any]) -> str | None:
    value = payload.get("logId")
    if value is None:
        return None
    if type(value) is not str or len(value) > 64:
        raise SchemaMismatch("logId must be a string of at most 64 characters", field="logId")
    return check_id("logId", value)
