"""ops-api-v2 over REST: model config, features, hot reload, releases, health, diagnostics,
limits and the audit log, with the §8 matrix's role sets (``app.policy``) and the partial rules
of the services (``app.services.ops.policy``), exactly as the GraphQL resolvers apply them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app import policy
from app.services import audit
from app.services.audit import category_of
from app.services.ops import config as ops_config
from app.services.ops import features as ops_features
from app.services.ops import health as ops_health
from app.services.ops import limits as ops_limits
from app.services.ops import releases as ops_releases
from app.services.ops import rulesets as ops_rulesets
from app.services.ops.releases import ReleaseView
from app.services.ops.values import ActiveRuleset, Limits, ModelConfig, Stamp, Toggle
from app.times import as_utc
from rest.calls import Call, caller
from rest.errors import errors
from rest.models import (
    ActiveRulesetOut,
    AuditEntryOut,
    AuditPage,
    DiagnosticsOut,
    FeatureOut,
    FeaturePatch,
    HealthOut,
    HotReloadBody,
    HotReloadOut,
    LimitsOut,
    LimitsPatch,
    ModelConfigOut,
    ModelConfigPatch,
    ReleaseBody,
    ReleaseOut,
    RollbackBody,
    RollbackOut,
    SlowQueryOut,
    epoch,
)

router = APIRouter(prefix="/operator/ops", tags=["ops"])


def _as(roles: policy.Roles) -> object:
    return Depends(caller(roles))


Admin = Annotated[Call, _as(policy.ADMIN)]


def _config(config: ModelConfig, stamp: Stamp) -> ModelConfigOut:
    return ModelConfigOut(
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        tone_profile=config.tone_profile,
        language=config.language,
        enabled=config.enabled,
        updated_at=epoch(stamp.at),
        updated_by=stamp.by,
    )


def _limits(limits: Limits, stamp: Stamp) -> LimitsOut:
    return LimitsOut(
        ai_calls_per_minute=limits.ai_calls_per_minute,
        file_upload_limit_mb=limits.file_upload_limit_mb,
        max_concurrent_sessions=limits.max_concurrent_sessions,
        updated_at=epoch(stamp.at),
        updated_by=stamp.by,
    )


def _toggle(toggle: Toggle) -> FeatureOut:
    return FeatureOut(
        key=toggle.key,
        enabled=toggle.enabled,
        description=toggle.description,
        region_flippable=toggle.region_flippable,
        updated_at=epoch(toggle.stamp.at),
        updated_by=toggle.stamp.by,
    )


def _release(view: ReleaseView) -> ReleaseOut:
    row = view.row
    return ReleaseOut(
        version=view.effective_version,
        notes=row.notes,
        date=int(as_utc(row.created_at).timestamp()),
        kind=str(row.kind),
        included_engines=list(row.included_engines),
        created_by=row.created_by,
        current=view.current,
        rolled_back_from=row.previous_version,
    )


def _active(active: ActiveRuleset) -> ActiveRulesetOut:
    return ActiveRulesetOut(
        type=active.type.value,
        ruleset_id=active.ruleset_id,
        version=active.declared_version,
        activated_at=epoch(active.activated_at),
        activated_by=active.activated_by,
        state=active.state.value,
        failed_target_id=active.failed_target_id,
        last_error=active.last_error,
        failed_at=epoch(active.failed_at),
    )


@router.get("/model-config", responses=errors(), summary="ops §1.1 (admin, engines)")
async def model_config(call: Annotated[Call, _as(policy.MODEL_CONFIG_READERS)]) -> ModelConfigOut:
    return _config(*await ops_config.read(call.ops))


@router.patch("/model-config", responses=errors(), summary="ops §1.2: partial update (admin)")
async def update_model_config(body: ModelConfigPatch, call: Admin) -> ModelConfigOut:
    return _config(*await ops_config.update(call.ops, call.principal, body.record(), call.request_id))


@router.get("/features", responses=errors(), summary="ops §2.1: key -> enabled (admin, region, engines)")
async def features(call: Annotated[Call, _as(policy.FEATURE_READERS)]) -> dict[str, bool]:
    return {toggle.key: toggle.enabled for toggle in await ops_features.list_toggles(call.ops)}


@router.patch(
    "/features/{featureKey}",
    responses=errors(404),
    summary="ops §2.2 (admin; region: toggles with regionFlippable only)",
)
async def set_feature(
    featureKey: str,
    body: FeaturePatch,
    call: Annotated[Call, _as(policy.FEATURE_WRITERS)],
) -> FeatureOut:
    return _toggle(
        await ops_features.set_toggle(call.ops, call.principal, featureKey, body.enabled, call.request_id)
    )


@router.post(
    "/hot-reload",
    responses=errors(409),
    summary="ops §3.1 (admin: any type; region: content, difficulty, scenario; country: content)",
)
async def hot_reload(body: HotReloadBody, call: Annotated[Call, _as(policy.HOT_RELOADERS)]) -> HotReloadOut:
    result = await ops_rulesets.hot_reload(
        call.ops, call.principal, body.type, body.target_id, call.request_id
    )
    return HotReloadOut(
        type=result.type.value,
        target_id=result.target_id,
        previous_ruleset_id=result.previous_ruleset_id,
        active=_active(result.active),
    )


@router.get("/releases", responses=errors(), summary="ops §4.1: the release history (admin)")
async def releases(call: Admin) -> list[ReleaseOut]:
    return [_release(view) for view in await ops_releases.list_releases(call.ops)]


@router.post("/releases", responses=errors(409), summary="ops §4.2 (admin)")
async def create_release(body: ReleaseBody, call: Admin) -> ReleaseOut:
    view = await ops_releases.create_release(
        call.ops, call.principal, body.version, body.notes, body.included_engines, call.request_id
    )
    return _release(view)


@router.post("/releases/rollback", responses=errors(404, 409), summary="ops §4.3 (admin)")
async def rollback(body: RollbackBody, call: Admin) -> RollbackOut:
    result = await ops_releases.rollback(call.ops, call.principal, body.target_version, call.request_id)
    return RollbackOut(restored=_release(result.restored), entry=_release(result.entry))


@router.get(
    "/health",
    responses=errors(),
    response_model_exclude_none=True,
    summary="ops §5.1 (branch: status only; country, region: also latency, uptime, engines)",
)
async def health(call: Annotated[Call, _as(policy.HEALTH_STATUS)]) -> HealthOut:
    report = await ops_health.health(call.ops)
    if call.principal.role not in policy.HEALTH_ENGINES:
        return HealthOut(status=report.status.value)
    return HealthOut(
        status=report.status.value,
        latency_ms=report.latency_ms,
        uptime_hours=report.uptime_hours,
        engines={engine.value: h.status.value for engine, h in report.engines.items()},
    )


@router.get("/diagnostics", responses=errors(), summary="ops §5.2 (admin)")
async def diagnostics(call: Admin) -> DiagnosticsOut:
    report = ops_health.diagnostics(call.ops)
    metrics = report.metrics
    return DiagnosticsOut(
        cpu=report.cpu,
        memory=report.memory,
        memory_rss_bytes=float(report.memory_rss_bytes),
        error_rate=metrics.error_rate,
        client_error_rate=metrics.client_error_rate,
        timeouts=metrics.timeouts,
        operations=metrics.operations,
        window_seconds=metrics.window_seconds,
        slow_queries=[
            SlowQueryOut(endpoint=s.endpoint, avg_ms=s.avg_ms, max_ms=s.max_ms, count=s.count)
            for s in metrics.slow_queries
        ],
    )


@router.get("/limits", responses=errors(), summary="ops §6.1 (admin, engines)")
async def limits(call: Annotated[Call, _as(policy.LIMITS_READERS)]) -> LimitsOut:
    return _limits(*await ops_limits.read(call.ops))


@router.patch("/limits", responses=errors(), summary="ops §6.2: partial update (admin)")
async def update_limits(body: LimitsPatch, call: Admin) -> LimitsOut:
    return _limits(*await ops_limits.update(call.ops, call.principal, body.record(), call.request_id))


def _instant(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@router.get("/audit", responses=errors(), summary="ops §7.1: newest first, cursor pagination (admin)")
async def audit_log(
    call: Admin,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
    action: Annotated[
        str | None, Query(description="predict | publish | reload | update_config, or one action")
    ] = None,
    from_: Annotated[
        int | None, Query(alias="from", ge=0, le=253402300799, description="Epoch seconds, inclusive.")
    ] = None,
    to: Annotated[int | None, Query(ge=0, le=253402300799, description="Epoch seconds, exclusive.")] = None,
    first: Annotated[int, Query(description="Page size.")] = 50,
    after: Annotated[str | None, Query(description="nextCursor of the previous page.")] = None,
) -> AuditPage:
    query = audit.AuditFilter(user_id=user_id, action=action, from_=_instant(from_), to=_instant(to))
    async with call.db.session() as session:
        page = await audit.list_entries(
            session, call.principal, query, first, after, call.settings.max_page_size
        )
    items = [
        AuditEntryOut(
            seq=row.seq,
            at=as_utc(row.at).timestamp(),
            actor_sub=row.actor_sub,
            actor_role=row.actor_role,
            action=row.action,
            category=category_of(row.action),
            target=row.target,
            before=row.before,
            after=row.after,
            request_id=row.request_id,
            user_id=row.user_id,
            prev_hash=row.prev_hash,
            entry_hash=row.entry_hash,
        )
        for row in page.items
    ]
    return AuditPage(
        items=items,
        next_cursor=page.cursors[-1] if page.has_next_page and page.cursors else None,
        has_next_page=page.has_next_page,
    )
