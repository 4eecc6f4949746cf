"""The REST request and response bodies: the specification's JSON shapes (camelCase, epoch seconds).

Requests forbid unknown fields (400 E_SCHEMA_MISMATCH). A log body is only typed here: the
service receives it as the record it sent (omitted fields absent, ``exclude_unset``) and
validates it exactly as it validates the GraphQL input, so the contract codes (E_VERSION_MISSING,
E_SCOPE_MISSING, value ranges) come from the same place for both transports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.services.ops.catalog import RulesetType


def epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def record(self) -> dict[str, Any]:
        """As sent: camelCase, omitted fields absent."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# --- UPM logs ---------------------------------------------------------------------------------


class LogVersion(Body):
    module_version: str | None = Field(None, description="Must be present; may be null.")
    scenario_version: str | None = Field(None, description="Must be present; may be null.")
    prompt_version: str | None = Field(None, description="Must be present; may be null.")


class LogScope(Body):
    region_id: str | None = None
    country_id: str | None = None
    branch_id: str | None = None
    team_id: str | None = None


class _Log(Body):
    user_id: str | None = None
    version: LogVersion | None = Field(None, description="Required (E_VERSION_MISSING).")
    scope: LogScope | None = Field(None, description="Required (E_SCOPE_MISSING).")
    log_id: str | None = Field(
        None, description="Optional idempotency key; the Idempotency-Key header sets it too."
    )


class ScenarioLogBody(_Log):
    """upm §2.1, plus version and scope."""

    scenario_id: str | None = None
    turns: int | None = None
    upsell_success: bool | None = None
    objections: int | None = None
    behavior_score: float | None = None


class QuizLogBody(_Log):
    """upm §3.1, plus version and scope."""

    quiz_id: str | None = None
    correct: int | None = None
    total: int | None = None
    topic: str | None = None
    difficulty: int | None = None


class LearningLogBody(_Log):
    """upm §4.1, plus version and scope."""

    module_id: str | None = None
    duration_minutes: float | None = None
    completed: bool | None = None


class MissionLogBody(_Log):
    """upm §5.1, plus version and scope."""

    mission_id: str | None = None
    success: bool | None = None
    score: float | None = None


class SkillDelta(Out):
    skill_id: str
    delta: float


class LogResult(Out):
    """An accepted log; a replay (same logId, same body) returns the first answer, duplicate: true."""

    user_id: str
    log_id: str | None
    record_id: str = Field(description="The id of the data-layer record it was stored as.")
    duplicate: bool = Field(description="True when this logId was already accepted (a replay).")
    skill_deltas: list[SkillDelta]


class SkillUpdateBody(Body):
    """upm §6.1 (admin only)."""

    user_id: str
    skill_id: str
    delta: float
    source: str


class SkillLevel(Out):
    user_id: str
    skill_id: str
    mastery: float


# --- UPM summaries (upm §1, §7) ---------------------------------------------------------------


class ScenarioSummary(Out):
    total_sessions: int
    avg_turns: float | None
    upsell_success_rate: float | None
    avg_objections: float | None
    behavior_score: float | None


class QuizSummary(Out):
    total_quizzes: int
    avg_accuracy: float | None
    strengths: list[str]
    weaknesses: list[str]


class LearningSummary(Out):
    completed_modules: int
    repeat_count: int
    engagement_score: float | None


class MissionSummary(Out):
    completed: int
    failed: int
    active: int


SkillSummary = dict[str, float]


class PerformanceSummary(Out):
    user_id: str
    scenario: ScenarioSummary
    quiz: QuizSummary
    learning: LearningSummary
    missions: MissionSummary
    skill: dict[str, float] = Field(description="Mastery per skill id in [0, 1].")
    updated_at: int | None = Field(description="Epoch seconds of the last accepted log.")


# --- ops --------------------------------------------------------------------------------------


class ModelConfigOut(Out):
    model: str
    temperature: float
    max_tokens: int
    tone_profile: str
    language: str
    enabled: bool
    updated_at: int | None
    updated_by: str


class ModelConfigPatch(Body):
    """ops §1.2: omitted fields stay as they are; null is refused."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tone_profile: str | None = None
    language: str | None = None
    enabled: bool | None = None


class FeaturePatch(Body):
    enabled: bool


class FeatureOut(Out):
    key: str
    enabled: bool
    description: str
    region_flippable: bool = Field(description="Whether a region operator may flip it (ops §8).")
    updated_at: int | None
    updated_by: str


class HotReloadBody(Body):
    type: RulesetType = Field(description="The engine type of ops §3.1.")
    target_id: str


class ActiveRulesetOut(Out):
    type: str
    ruleset_id: str | None
    version: str | None
    activated_at: int | None
    activated_by: str | None
    state: str
    failed_target_id: str | None
    last_error: str | None
    failed_at: int | None


class HotReloadOut(Out):
    type: str
    target_id: str
    previous_ruleset_id: str | None
    active: ActiveRulesetOut


class ReleaseBody(Body):
    version: str
    notes: str
    included_engines: list[str] = Field(default_factory=list)


class ReleaseOut(Out):
    version: str
    notes: str
    date: int = Field(description="Epoch seconds.")
    kind: str
    included_engines: list[str]
    created_by: str
    current: bool
    rolled_back_from: str | None


class RollbackBody(Body):
    target_version: str


class RollbackOut(Out):
    restored: ReleaseOut
    entry: ReleaseOut


class HealthOut(Out):
    """ops §5.1. Branch operators get status only; country and region also latency, uptime, engines."""

    status: str
    latency_ms: float | None = None
    uptime_hours: float | None = None
    engines: dict[str, str] | None = None


class SlowQueryOut(Out):
    endpoint: str
    avg_ms: float
    max_ms: float
    count: int


class DiagnosticsOut(Out):
    cpu: float
    memory: float
    memory_rss_bytes: float
    error_rate: float
    client_error_rate: float
    timeouts: int
    operations: int
    window_seconds: float
    slow_queries: list[SlowQueryOut]


class LimitsOut(Out):
    ai_calls_per_minute: int
    file_upload_limit_mb: int
    max_concurrent_sessions: int
    updated_at: int | None
    updated_by: str


class LimitsPatch(Body):
    """ops §6.2: omitted fields stay as they are; null is refused."""

    ai_calls_per_minute: int | None = None
    file_upload_limit_mb: int | None = None
    max_concurrent_sessions: int | None = None


class AuditEntryOut(Out):
    seq: int
    at: float = Field(description="Epoch seconds.")
    actor_sub: str
    actor_role: str
    action: str
    category: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str
    user_id: str
    prev_hash: str
    entry_hash: str


class AuditPage(Out):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass as `after` for the next (older) page.")
    has_next_page: bool


# --- data layer -------------------------------------------------------------------------------


class LogBatchBody(Body):
    records: list[dict[str, Any]] = Field(
        description="Records shaped as data-layer §3.1-3.3 (the GraphQL recordsJson form)."
    )
    partial: bool = Field(False, description="Store the valid records even when others are rejected.")


class RecordErrorOut(Out):
    index: int
    id: str | None
    code: str
    message: str
    field: str | None


class LogBatchOut(Out):
    accepted: int
    duplicates: int
    rejected: int
    skipped: int
    statuses: list[str] = Field(description="Per input record: ACCEPTED, DUPLICATE, REJECTED or SKIPPED.")
    errors: list[RecordErrorOut]


class SnapshotBuildOut(Out):
    date: str
    rebuilt: bool
    snapshots: int
    regions: int
    countries: int
    branches: int
    teams: int
    built_at: int
    built_by: str
    later_days_to_rebuild: list[str]
