"""The UPM ruleset (upm §9): the rules behind skill deltas, behaviorScore and quiz strengths.

It is the first hot-reloadable ruleset: a document uploaded with ``uploadRuleset(type: upm)`` must
validate against ``UpmRuleset`` and becomes the rules of the performance monitor with
``hotReload(type: upm, targetId: ...)``, without a restart.

Rulesets are immutable by id (the release history refers to them by id), so a change to
``DEFAULT_UPM_RULESET`` ships under a new ``DEFAULT_UPM_RULESET_ID`` together with a migration
that stores it; migration 0005 stores this one.

Document shape (JSON, camelCase keys like the API; skill ids are the spec's snake_case ids)::

    {
      "version": "1",
      "skillWeights": {                       # per source: the delta to each skill for a full
        "scenario": {"upsell": 0.05, ...},     # success (scaled by the result's score in 0..1)
        "quiz": {...}, "learning": {...}, "mission": {...}
      },
      "behaviorScore": {"aggregation": "ema", "emaAlpha": 0.3, "minTurns": 3,
                        "weights": {"engineScore": 0.6, "upsellSuccess": 0.25, "objectionHandling": 0.15}},
      "quizThresholds": {"strengthAccuracy": 0.8, "weaknessAccuracy": 0.5, "minAttempts": 2}
    }
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SKILLS = ("upsell", "objection_handling", "product_knowledge")
SOURCES = ("scenario", "quiz", "learning", "mission")

Delta = Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Document(BaseModel):
    """Strict: an unknown or misspelt key is an error, not a silently ignored rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SkillDeltas(_Document):
    """The change to each skill's mastery (0..1) that one fully successful result brings."""

    upsell: Delta
    objection_handling: Delta
    product_knowledge: Delta

    def of(self, skill: str) -> float:
        value: float = getattr(self, skill)
        return value


class SkillWeights(_Document):
    """Deltas per UPM source (the ``source`` of upm §6.1)."""

    scenario: SkillDeltas
    quiz: SkillDeltas
    learning: SkillDeltas
    mission: SkillDeltas


class BehaviorWeights(_Document):
    """How one scenario session's score blends the engine's behaviorScore with the outcomes."""

    engine_score: Share = Field(alias="engineScore")
    upsell_success: Share = Field(alias="upsellSuccess")
    objection_handling: Share = Field(alias="objectionHandling")

    @model_validator(mode="after")
    def _sum_to_one(self) -> BehaviorWeights:
        total = self.engine_score + self.upsell_success + self.objection_handling
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"behaviorScore weights must sum to 1, not {total:g}")
        return self


class BehaviorScore(_Document):
    """The behaviorScore algorithm of the aggregated profile (upm §1 scenario.behaviorScore)."""

    aggregation: Literal["mean", "ema"]
    # Weight of the newest session when aggregation is "ema".
    ema_alpha: float = Field(alias="emaAlpha", gt=0, le=1, allow_inf_nan=False)
    # Sessions shorter than this many turns do not move the score.
    min_turns: int = Field(alias="minTurns", ge=0, le=1000)
    weights: BehaviorWeights


class QuizThresholds(_Document):
    """A topic is a strength at or above strengthAccuracy, a weakness below weaknessAccuracy."""

    strength_accuracy: Share = Field(alias="strengthAccuracy")
    weakness_accuracy: Share = Field(alias="weaknessAccuracy")
    # Topics with fewer quizzes are neither.
    min_attempts: int = Field(alias="minAttempts", ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> QuizThresholds:
        if self.weakness_accuracy >= self.strength_accuracy:
            raise ValueError("weaknessAccuracy must be below strengthAccuracy")
        return self


class UpmRuleset(_Document):
    """The schema an uploaded ``upm`` ruleset must match."""

    version: str = Field(min_length=1, max_length=64)
    skill_weights: SkillWeights = Field(alias="skillWeights")
    behavior_score: BehaviorScore = Field(alias="behaviorScore")
    quiz_thresholds: QuizThresholds = Field(alias="quizThresholds")

    def skill_delta(self, source: str, skill: str) -> float:
        deltas: SkillDeltas = getattr(self.skill_weights, source)
        return deltas.of(skill)

    def document(self) -> dict[str, Any]:
        """The JSON document, with the API's camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)


DEFAULT_UPM_RULESET_ID = "upm_default_v1"

DEFAULT_UPM_RULESET = UpmRuleset.model_validate(
    {
        "version": "1",
        "skillWeights": {
            "scenario": {"upsell": 0.05, "objection_handling": 0.04, "product_knowledge": 0.01},
            "quiz": {"upsell": 0.0, "objection_handling": 0.0, "product_knowledge": 0.05},
            "learning": {"upsell": 0.01, "objection_handling": 0.01, "product_knowledge": 0.03},
            "mission": {"upsell": 0.03, "objection_handling": 0.02, "product_knowledge": 0.02},
        },
        "behaviorScore": {
            "aggregation": "ema",
            "emaAlpha": 0.3,
            "minTurns": 3,
            "weights": {"engineScore": 0.6, "upsellSuccess": 0.25, "objectionHandling": 0.15},
        },
        "quizThresholds": {"strengthAccuracy": 0.8, "weaknessAccuracy": 0.5, "minAttempts": 2},
    }
)

__all__ = [
    "DEFAULT_UPM_RULESET",
    "DEFAULT_UPM_RULESET_ID",
    "SKILLS",
    "SOURCES",
    "UpmRuleset",
]
