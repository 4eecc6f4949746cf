"""System operations types (ops-api-v2); field names are the spec's camelCase JSON names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app import policy
from app.coordination import CoordinationStatus
from app.services.ops.catalog import (
    LANGUAGES,
    TONE_PROFILES,
    Engine,
    EngineStatus,
    HealthStatus,
    ReleaseKind,
    RulesetState,
    RulesetType,
)
from app.services.ops.diagnostics import DiagnosticsReport, SlowQuery
from app.services.ops.health import EngineHealth, HealthReport, Heartbeat
from app.services.ops.releases import ReleaseView, Rollback
from app.services.ops.rulesets import ReloadResult, RulesetView
from app.services.ops.values import ActiveRuleset, Limits, ModelConfig, Stamp, Toggle
from app.times import as_utc
from graphql_schema.permissions import allow

RulesetTypeEnum = strawberry.enum(
    RulesetType, name="RulesetType", description="The engine types of ops §3.1, as the spec writes them."
)
EngineEnum = strawberry.enum(
    Engine, name="Engine", description="The engines of the health report (ops §5.1)."
)
EngineStatusEnum = strawberry.enum(
    EngineStatus,
    name="EngineStatus",
    description="ok: heartbeat within the window; stale: older; unknown: never; degraded: failed reload.",
)
HealthStatusEnum = strawberry.enum(
    HealthStatus,
    name="HealthStatus",
    description="ok; degraded: an engine is stale or degraded; down: the database does not answer.",
)
RulesetStateEnum = strawberry.enum(
    RulesetState, name="RulesetState", description="degraded: the last hot reload of the type failed."
)
ReleaseKindEnum = strawberry.enum(ReleaseKind, name="ReleaseKind")


@strawberry.type(name="ModelConfig", description="ops §1: the model settings every AI engine must use.")
class ModelConfigType:
    model: str
    temperature: float
    max_tokens: int
    tone_profile: str
    language: str
    enabled: bool
    updated_at: datetime
    updated_by: str

    @classmethod
    def from_row(cls, config: ModelConfig, stamp: Stamp) -> ModelConfigType:
        return cls(
            model=config.model,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            tone_profile=config.tone_profile,
            language=config.language,
            enabled=config.enabled,
            updated_at=stamp.at,
            updated_by=stamp.by,
        )


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not strawberry.UNSET}


@strawberry.input(description="Omitted fields stay as they are; null is refused (E_SCHEMA_MISMATCH).")
class UpdateModelConfigInput:
    model: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="One of the server's allowed models (TRAINER_OPS_ALLOWED_MODELS).",
    )
    temperature: float | None = strawberry.field(default=strawberry.UNSET, description="0 to 2.")
    max_tokens: int | None = strawberry.field(
        default=strawberry.UNSET, description="1 to the server's bound (TRAINER_OPS_MAX_TOKENS_BOUND, 32768)."
    )
    tone_profile: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"One of: {', '.join(TONE_PROFILES)}."
    )
    language: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"One of: {', '.join(LANGUAGES)}."
    )
    enabled: bool | None = strawberry.UNSET

    def to_value(self) -> dict[str, Any]:
        return _given(
            {
                "model": self.model,
                "temperature": self.temperature,
                "maxTokens": self.max_tokens,
                "toneProfile": self.tone_profile,
                "language": self.language,
                "enabled": self.enabled,
            }
        )


@strawberry.type(description="ops §2: a feature toggle engines obey.")
class FeatureToggle:
    key: str
    enabled: bool
    description: str
    region_flippable: bool = strawberry.field(description="Whether a region operator may flip it (§8).")
    updated_at: datetime
    updated_by: str

    @classmethod
    def from_row(cls, toggle: Toggle) -> FeatureToggle:
        return cls(
            key=toggle.key,
            enabled=toggle.enabled,
            description=toggle.description,
            region_flippable=toggle.region_flippable,
            updated_at=toggle.stamp.at,
            updated_by=toggle.stamp.by,
        )


@strawberry.type(name="Limits", description="ops §6, enforced: see each field for what it counts.")
class LimitsType:
    ai_calls_per_minute: int = strawberry.field(
        description="Per engine principal and worker: root fields of its queries and mutations per minute "
        "(aliases count each); an operation over the budget is refused whole with RATE_LIMITED."
    )
    file_upload_limit_mb: int = strawberry.field(
        description="Largest request body in MiB (413 above it), bounded by TRAINER_MAX_BODY_BYTES."
    )
    max_concurrent_sessions: int = strawberry.field(
        description="Per engine principal and worker: queries and mutations in flight at once."
    )
    updated_at: datetime
    updated_by: str

    @classmethod
    def from_row(cls, limits: Limits, stamp: Stamp) -> LimitsType:
        return cls(
            ai_calls_per_minute=limits.ai_calls_per_minute,
            file_upload_limit_mb=limits.file_upload_limit_mb,
            max_concurrent_sessions=limits.max_concurrent_sessions,
            updated_at=stamp.at,
            updated_by=stamp.by,
        )


@strawberry.input(description="Omitted fields stay as they are; null is refused (E_SCHEMA_MISMATCH).")
class UpdateLimitsInput:
    ai_calls_per_minute: int | None = strawberry.field(default=strawberry.UNSET, description="1 to 100000.")
    file_upload_limit_mb: int | None = strawberry.field(default=strawberry.UNSET, description="1 to 10240.")
    max_concurrent_sessions: int | None = strawberry.field(
        default=strawberry.UNSET, description="1 to 10000."
    )

    def to_value(self) -> dict[str, Any]:
        return _given(
            {
                "aiCallsPerMinute": self.ai_calls_per_minute,
                "fileUploadLimitMb": self.file_upload_limit_mb,
                "maxConcurrentSessions": self.max_concurrent_sessions,
            }
        )


@strawberry.type(description="An uploaded, immutable ruleset document.")
class Ruleset:
    ruleset_id: str
    type: RulesetTypeEnum  # type: ignore[valid-type]
    version: str = strawberry.field(description="The version the document declares.")
    document: JSON
    content_hash: str
    uploaded_at: datetime
    uploaded_by: str
    active: bool = strawberry.field(description="Whether it is the active ruleset of its type.")

    @classmethod
    def from_row(cls, view: RulesetView) -> Ruleset:
        row = view.row
        return cls(
            ruleset_id=row.ruleset_id,
            type=RulesetType(row.engine_type),
            version=row.declared_version,
            document=JSON(row.document),
            content_hash=row.content_hash,
            uploaded_at=as_utc(row.uploaded_at),
            uploaded_by=row.uploaded_by,
            active=view.active,
        )


@strawberry.input
class UploadRulesetInput:
    type: RulesetTypeEnum  # type: ignore[valid-type]
    ruleset_id: str = strawberry.field(description="New id, e.g. behavior_score_v3; never reused.")
    document: JSON = strawberry.field(
        description="upm: the UPM ruleset schema; other types: a JSON object with a string `version`."
    )


@strawberry.type(
    name="ActiveRuleset", description="The ruleset a type runs, and the outcome of its last hot reload."
)
class ActiveRulesetType:
    type: RulesetTypeEnum  # type: ignore[valid-type]
    ruleset_id: str | None
    version: str | None
    activated_at: datetime | None
    activated_by: str | None
    state: RulesetStateEnum  # type: ignore[valid-type]
    failed_target_id: str | None
    last_error: str | None
    failed_at: datetime | None

    @classmethod
    def from_row(cls, active: ActiveRuleset) -> ActiveRulesetType:
        return cls(
            type=active.type,
            ruleset_id=active.ruleset_id,
            version=active.declared_version,
            activated_at=active.activated_at,
            activated_by=active.activated_by,
            state=active.state,
            failed_target_id=active.failed_target_id,
            last_error=active.last_error,
            failed_at=active.failed_at,
        )


@strawberry.type
class HotReloadResult:
    type: RulesetTypeEnum  # type: ignore[valid-type]
    target_id: str
    previous_ruleset_id: str | None
    active: ActiveRulesetType = strawberry.field(description="The type's active ruleset now.")

    @classmethod
    def from_row(cls, result: ReloadResult) -> HotReloadResult:
        return cls(
            type=result.type,
            target_id=result.target_id,
            previous_ruleset_id=result.previous_ruleset_id,
            active=ActiveRulesetType.from_row(result.active),
        )


@strawberry.type(description="An entry of the release history: a release, or a rollback to one.")
class Release:
    version: str = strawberry.field(
        description="The release's version; for a rollback, the version restored."
    )
    kind: ReleaseKindEnum  # type: ignore[valid-type]
    notes: str
    included_engines: list[str]
    date: int = strawberry.field(description="When, in epoch seconds (like the spec).")
    created_at: datetime
    created_by: str
    current: bool = strawberry.field(
        description="The release in force: the last one created or rolled back to."
    )
    rolled_back_from: str | None = strawberry.field(description="For a rollback: the version it replaced.")
    snapshot: JSON = strawberry.field(
        description="What it holds: {modelConfig, limits, features: {key: enabled}, "
        "rulesets: {type: rulesetId}}."
    )

    @classmethod
    def from_row(cls, view: ReleaseView) -> Release:
        row = view.row
        created = as_utc(row.created_at)
        return cls(
            version=view.effective_version,
            kind=ReleaseKind(row.kind),
            notes=row.notes,
            included_engines=list(row.included_engines),
            date=int(created.timestamp()),
            created_at=created,
            created_by=row.created_by,
            current=view.current,
            rolled_back_from=row.previous_version,
            snapshot=JSON(row.snapshot),
        )


@strawberry.type
class RollbackResult:
    restored: Release = strawberry.field(description="The release now in force.")
    entry: Release = strawberry.field(description="The rollback entry appended to the history.")

    @classmethod
    def from_row(cls, result: Rollback) -> RollbackResult:
        return cls(restored=Release.from_row(result.restored), entry=Release.from_row(result.entry))


@strawberry.type(description="ops §5.1 engines: the status of each engine.")
class EngineStatuses:
    scenario: EngineStatusEnum  # type: ignore[valid-type]
    prompt: EngineStatusEnum  # type: ignore[valid-type]
    difficulty: EngineStatusEnum  # type: ignore[valid-type]
    content: EngineStatusEnum  # type: ignore[valid-type]
    gamification: EngineStatusEnum  # type: ignore[valid-type]
    missions: EngineStatusEnum  # type: ignore[valid-type]
    upm: EngineStatusEnum  # type: ignore[valid-type]
    insights: EngineStatusEnum  # type: ignore[valid-type]

    @classmethod
    def from_row(cls, engines: dict[Engine, EngineHealth]) -> EngineStatuses:
        return cls(**{engine.value: health.status for engine, health in engines.items()})


@strawberry.type(name="EngineHealth", description="One engine's signals (admin).")
class EngineHealthType:
    engine: EngineEnum  # type: ignore[valid-type]
    status: EngineStatusEnum  # type: ignore[valid-type]
    last_heartbeat_at: datetime | None
    last_heartbeat_by: str | None
    active_ruleset_id: str | None
    ruleset_state: RulesetStateEnum | None  # type: ignore[valid-type]

    @classmethod
    def from_row(cls, health: EngineHealth) -> EngineHealthType:
        return cls(
            engine=health.engine,
            status=health.status,
            last_heartbeat_at=health.last_heartbeat_at,
            last_heartbeat_by=health.last_heartbeat_by,
            active_ruleset_id=health.ruleset.ruleset_id if health.ruleset else None,
            ruleset_state=health.ruleset.state if health.ruleset else None,
        )


@strawberry.type(
    name="CoordinationHealth",
    description="What this worker shares with the deployment's other workers (admin): the engine "
    "limits and live updates, through Redis, PostgreSQL, or nothing (memory: one worker).",
)
class CoordinationHealthType:
    backend: str = strawberry.field(description="redis, postgres or memory.")
    status: HealthStatusEnum  # type: ignore[valid-type]
    limits_shared: bool = strawberry.field(
        description="false: each worker counts aiCallsPerMinute and maxConcurrentSessions alone (memory, "
        "or the fallback while the store is unreachable)."
    )
    live_updates_shared: bool = strawberry.field(
        description="false: subscriptions hear only of writes made through this worker."
    )
    last_error: str | None

    @classmethod
    def from_row(cls, status: CoordinationStatus) -> CoordinationHealthType:
        return cls(
            backend=status.backend,
            status=HealthStatus.degraded if status.degraded else HealthStatus.ok,
            limits_shared=status.limits_shared,
            live_updates_shared=status.live_updates_shared,
            last_error=status.last_error,
        )


@strawberry.type(
    description="ops §5.1. Branch operators see status only; country and region operators also latency, "
    "uptime and engines; engineDetails and activeRulesets are admin's (FORBIDDEN otherwise)."
)
class Health:
    status: HealthStatusEnum  # type: ignore[valid-type]
    latency_ms: float | None = strawberry.field(
        extensions=[allow(policy.HEALTH_ENGINES)], description="A database round trip, in ms."
    )
    uptime_hours: float | None = strawberry.field(
        extensions=[allow(policy.HEALTH_ENGINES)], description="Of this worker process."
    )
    engines: EngineStatuses | None = strawberry.field(extensions=[allow(policy.HEALTH_ENGINES)])
    engine_details: list[EngineHealthType] | None = strawberry.field(
        extensions=[allow(policy.HEALTH_DETAILS)]
    )
    active_rulesets: list[ActiveRulesetType] | None = strawberry.field(
        extensions=[allow(policy.HEALTH_DETAILS)], description="The active ruleset per type."
    )
    coordination: CoordinationHealthType | None = strawberry.field(extensions=[allow(policy.HEALTH_DETAILS)])

    @classmethod
    def from_row(cls, report: HealthReport) -> Health:
        return cls(
            status=report.status,
            latency_ms=report.latency_ms,
            uptime_hours=report.uptime_hours,
            engines=EngineStatuses.from_row(report.engines),
            engine_details=[EngineHealthType.from_row(h) for h in report.engines.values()],
            active_rulesets=[ActiveRulesetType.from_row(r) for r in report.rulesets],
            coordination=CoordinationHealthType.from_row(report.coordination),
        )


@strawberry.type(name="SlowQuery")
class SlowQueryType:
    endpoint: str = strawberry.field(description="Operation type and its root fields, e.g. `query users`.")
    avg_ms: float
    max_ms: float
    count: int

    @classmethod
    def from_row(cls, slow: SlowQuery) -> SlowQueryType:
        return cls(endpoint=slow.endpoint, avg_ms=slow.avg_ms, max_ms=slow.max_ms, count=slow.count)


@strawberry.type(
    description="ops §5.2, measured by this worker over the last windowSeconds (CPU since the previous call)."
)
class Diagnostics:
    cpu: float = strawberry.field(description="Share of the machine's CPU used by this process (0-1).")
    memory: float = strawberry.field(description="Resident memory as a share of the machine's (0-1).")
    memory_rss_bytes: float
    error_rate: float = strawberry.field(
        description="Operations that failed on the server side / operations."
    )
    client_error_rate: float = strawberry.field(description="Operations refused as the client's mistake.")
    timeouts: int = strawberry.field(description="Operations that failed with a timeout.")
    operations: int
    window_seconds: float
    slow_queries: list[SlowQueryType] = strawberry.field(description="Slowest operations by average time.")

    @classmethod
    def from_row(cls, report: DiagnosticsReport) -> Diagnostics:
        metrics = report.metrics
        return cls(
            cpu=report.cpu,
            memory=report.memory,
            memory_rss_bytes=float(report.memory_rss_bytes),
            error_rate=metrics.error_rate,
            client_error_rate=metrics.client_error_rate,
            timeouts=metrics.timeouts,
            operations=metrics.operations,
            window_seconds=metrics.window_seconds,
            slow_queries=[SlowQueryType.from_row(slow) for slow in metrics.slow_queries],
        )


@strawberry.type
class EngineHeartbeatResult:
    engine: EngineEnum  # type: ignore[valid-type]
    received_at: datetime
    active_ruleset: ActiveRulesetType | None = strawberry.field(
        description="The ruleset this engine should be running now."
    )

    @classmethod
    def from_row(cls, beat: Heartbeat) -> EngineHeartbeatResult:
        return cls(
            engine=beat.engine,
            received_at=beat.received_at,
            active_ruleset=ActiveRulesetType.from_row(beat.active_ruleset) if beat.active_ruleset else None,
        )
