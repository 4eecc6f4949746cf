"""Health (ops §5.1) from real signals, engine heartbeats, and diagnostics (§5.2).

An engine's status: ``degraded`` while its ruleset type's last reload failed; otherwise ``ok``
if its last ``engineHeartbeat`` is within ``TRAINER_OPS_ENGINE_STALE_SECONDS`` (60 s; engines
should beat every 15-20 s), ``stale`` if older, ``unknown`` if it never sent one. The overall
status is ``down`` when the database does not answer, ``degraded`` when an engine is stale or
degraded (or the system ruleset is), else ``ok``: an engine that never started does not
degrade it. Heartbeats are signals, not settings changes: they are not audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlmodel import col

from app.auth import Principal
from app.coordination import CoordinationStatus
from app.services.ops.catalog import (
    ENGINE_RULESET,
    Engine,
    EngineStatus,
    HealthStatus,
    RulesetState,
    RulesetType,
)
from app.services.ops.diagnostics import DiagnosticsReport, report
from app.services.ops.state import OpsRuntime
from app.services.ops.values import ActiveRuleset
from app.times import as_utc
from persistence.models.ops import EngineHeartbeatRow

log = logging.getLogger("trainer_console.ops")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    engine: Engine
    received_at: datetime
    active_ruleset: ActiveRuleset | None


@dataclass(frozen=True, slots=True)
class EngineHealth:
    engine: Engine
    status: EngineStatus
    last_heartbeat_at: datetime | None
    last_heartbeat_by: str | None
    ruleset: ActiveRuleset | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: HealthStatus
    latency_ms: float | None
    uptime_hours: float
    engines: dict[Engine, EngineHealth]
    rulesets: tuple[ActiveRuleset, ...]
    coordination: CoordinationStatus


async def heartbeat(ops: OpsRuntime, principal: Principal, engine: Engine) -> Heartbeat:
    """Record that ``engine`` is alive; answers with the ruleset it should be running."""
    now = datetime.now(UTC)
    async with ops.db.transaction() as session:
        await session.execute(
            update(EngineHeartbeatRow)
            .where(col(EngineHeartbeatRow.engine) == engine.value)
            .values(last_seen_at=now, sent_by=principal.sub, beats=EngineHeartbeatRow.beats + 1)
        )
    snapshot = await ops.current()
    return Heartbeat(engine, now, snapshot.rulesets.get(ENGINE_RULESET[engine]))


def engine_status(
    ruleset: ActiveRuleset | None, last_seen: datetime | None, now: datetime, stale_after: float
) -> EngineStatus:
    if ruleset is not None and ruleset.state is RulesetState.degraded:
        return EngineStatus.degraded
    if last_seen is None:
        return EngineStatus.unknown
    return EngineStatus.ok if (now - last_seen).total_seconds() <= stale_after else EngineStatus.stale


async def health(ops: OpsRuntime) -> HealthReport:
    """One database round trip for latency, one for the heartbeats; rulesets from the cache."""
    uptime = round(ops.uptime_seconds() / 3600, 4)
    coordination = await ops.coordination.status()
    try:
        latency: float | None = round(await ops.db.ping(), 2)
        snapshot = await ops.current()
        async with ops.db.session() as session:
            beats = {row.engine: row for row in (await session.scalars(select(EngineHeartbeatRow))).all()}
    except Exception:  # an unreachable database is the answer here, not an error
        log.warning("health: database unreachable", exc_info=True)
        unknown = {e: EngineHealth(e, EngineStatus.unknown, None, None, None) for e in Engine}
        return HealthReport(HealthStatus.down, None, uptime, unknown, (), coordination)
    now = datetime.now(UTC)
    engines: dict[Engine, EngineHealth] = {}
    for engine in Engine:
        beat = beats.get(engine.value)
        seen = as_utc(beat.last_seen_at) if beat is not None and beat.last_seen_at else None
        ruleset = snapshot.rulesets.get(ENGINE_RULESET[engine])
        status = engine_status(ruleset, seen, now, ops.settings.ops_engine_stale_seconds)
        engines[engine] = EngineHealth(engine, status, seen, beat.sent_by if beat else None, ruleset)
    system = snapshot.rulesets.get(RulesetType.system)
    troubled = any(h.status in (EngineStatus.stale, EngineStatus.degraded) for h in engines.values()) or (
        system is not None and system.state is RulesetState.degraded
    )
    return HealthReport(
        HealthStatus.degraded if troubled or coordination.degraded else HealthStatus.ok,
        latency,
        uptime,
        engines,
        tuple(snapshot.rulesets.values()),
        coordination,
    )


def diagnostics(ops: OpsRuntime) -> DiagnosticsReport:
    """This worker's CPU, memory, error rate, timeouts and slowest operations."""
    return report(ops.metrics, ops.sampler)
