"""The formulas the specification leaves open, driven by the active UPM ruleset.

Every number the profile shows comes from here, so the README and the tests
can state them once:

- a scenario session's score blends the engine's behaviorScore with its
  outcomes: ``engine·behaviorScore + upsell·[upsellSuccess] + objection·1/(1+objections)``
  (weights from ``behaviorScore.weights``); sessions shorter than ``minTurns``
  count in the totals but move neither the behaviorScore nor the skills;
- the profile's behaviorScore is the mean of those session scores, or their
  exponential moving average with ``emaAlpha`` (``behaviorScore.aggregation``);
- a result's factor in [0, 1]: scenario → its session score, quiz → accuracy
  (correct/total), learning → 1 if completed else 0, mission → score if
  success else 0; each skill moves by ``skillWeights[source][skill] · factor``,
  and mastery is clamped to [0, 1];
- quiz strengths / weaknesses: topics with at least ``minAttempts`` quizzes
  whose accuracy (all correct / all questions of the topic) is at least
  ``strengthAccuracy`` / below ``weaknessAccuracy``, best (worst) first;
- learning engagementScore: ``0.6 · completed logs / logs + 0.4 · min(1, minutes / (logs · 15))``
  — finishing what one starts, and spending the time a module is designed for;
- missions: ``completed`` counts successful results, ``failed`` failed ones,
  and ``active`` the missions whose latest result is a failure (a failed
  mission stays open until it is passed).
"""

from __future__ import annotations

from app.services.upm.payloads import (
    LearningResult,
    MissionResult,
    QuizResult,
    Result,
    ScenarioResult,
)
from app.services.upm.ruleset import SKILLS, UpmRuleset

ENGAGEMENT_COMPLETION_WEIGHT = 0.6
ENGAGEMENT_TIME_WEIGHT = 0.4
ENGAGEMENT_TARGET_MINUTES = 15.0


def session_score(result: ScenarioResult, rules: UpmRuleset) -> float | None:
    """The blended score of one scenario session, or None when it is too short to count."""
    behavior = rules.behavior_score
    if result.turns < behavior.min_turns:
        return None
    weights = behavior.weights
    score = (
        weights.engine_score * result.behavior_score
        + weights.upsell_success * (1.0 if result.upsell_success else 0.0)
        + weights.objection_handling / (1 + result.objections)
    )
    return min(1.0, max(0.0, score))


def source_of(result: Result) -> str:
    match result:
        case ScenarioResult():
            return "scenario"
        case QuizResult():
            return "quiz"
        case LearningResult():
            return "learning"
        case MissionResult():
            return "mission"


def factor(result: Result, rules: UpmRuleset) -> float:
    match result:
        case ScenarioResult():
            return session_score(result, rules) or 0.0
        case QuizResult():
            return result.accuracy
        case LearningResult():
            return 1.0 if result.completed else 0.0
        case MissionResult():
            return result.score if result.success else 0.0


def skill_deltas(result: Result, rules: UpmRuleset) -> dict[str, float]:
    """The change each skill gets from one accepted result (zero changes left out)."""
    weight = factor(result, rules)
    source = source_of(result)
    deltas = {skill: rules.skill_delta(source, skill) * weight for skill in SKILLS}
    return {skill: delta for skill, delta in deltas.items() if delta != 0.0}


def clamp_mastery(value: float) -> float:
    return min(1.0, max(0.0, value))


def engagement(logs: int, completed_logs: int, minutes: float) -> float | None:
    if logs == 0:
        return None
    completion = completed_logs / logs
    time_share = min(1.0, minutes / (logs * ENGAGEMENT_TARGET_MINUTES))
    return ENGAGEMENT_COMPLETION_WEIGHT * completion + ENGAGEMENT_TIME_WEIGHT * time_share


def strengths_and_weaknesses(
    topics: list[tuple[str, int, int, int]], rules: UpmRuleset
) -> tuple[list[str], list[str]]:
    """``topics``: (topic, quizzes, correct, total) rows."""
    thresholds = rules.quiz_thresholds
    rated = [
        (correct / total, topic)
        for topic, quizzes, correct, total in topics
        if quizzes >= thresholds.min_attempts and total > 0
    ]
    strengths = [
        t for acc, t in sorted(rated, key=lambda r: (-r[0], r[1])) if acc >= thresholds.strength_accuracy
    ]
    weaknesses = [t for acc, t in sorted(rated) if acc < thresholds.weakness_accuracy]
    return strengths, weaknesses
