"""System operations (ops-api-v2): settings engines obey, rulesets, releases, health.

Roles are gated here with the §8 matrix's role sets (``app.policy``); the partial rules
(which toggles a region flips, which types a region or country reloads) live in the services
(``app.services.ops.policy``).
"""

from __future__ import annotations

import strawberry

from app import policy
from app.services.ops import config as ops_config
from app.services.ops import features as ops_features
from app.services.ops import health as ops_health
from app.services.ops import limits as ops_limits
from app.services.ops import releases as ops_releases
from app.services.ops import rulesets as ops_rulesets
from graphql_schema.info import Info
from graphql_schema.permissions import allow
from graphql_schema.types.ops import (
    Diagnostics,
    EngineEnum,
    EngineHeartbeatResult,
    FeatureToggle,
    Health,
    HotReloadResult,
    LimitsType,
    ModelConfigType,
    Release,
    RollbackResult,
    Ruleset,
    RulesetTypeEnum,
    UpdateLimitsInput,
    UpdateModelConfigInput,
    UploadRulesetInput,
)


@strawberry.type
class OpsQuery:
    @strawberry.field(
        extensions=[allow(policy.MODEL_CONFIG_READERS)], description="ops §1.1 (admin, engines)."
    )
    async def model_config(self, info: Info) -> ModelConfigType:
        return ModelConfigType.from_row(*await ops_config.read(info.context.ops))

    @strawberry.field(
        extensions=[allow(policy.FEATURE_READERS)], description="ops §2.1 (admin, region, engines)."
    )
    async def features(self, info: Info) -> list[FeatureToggle]:
        return [FeatureToggle.from_row(t) for t in await ops_features.list_toggles(info.context.ops)]

    @strawberry.field(extensions=[allow(policy.LIMITS_READERS)], description="ops §6.1 (admin, engines).")
    async def limits(self, info: Info) -> LimitsType:
        return LimitsType.from_row(*await ops_limits.read(info.context.ops))

    @strawberry.field(
        extensions=[allow(policy.RULESET_READERS)],
        description="A type's rulesets, newest first (admin and engines: all types; region and country: "
        "the types they may hot-reload).",
    )
    async def rulesets(
        self,
        info: Info,
        type: RulesetTypeEnum,  # type: ignore[valid-type]
        active_only: bool = False,
        first: int = 20,
    ) -> list[Ruleset]:
        ctx = info.context
        views = await ops_rulesets.list_rulesets(ctx.ops, ctx.principal, type, active_only, first)
        return [Ruleset.from_row(view) for view in views]

    @strawberry.field(extensions=[allow(policy.ADMIN)], description="ops §4.1: the release history (admin).")
    async def releases(self, info: Info) -> list[Release]:
        return [Release.from_row(view) for view in await ops_releases.list_releases(info.context.ops)]

    @strawberry.field(
        extensions=[allow(policy.HEALTH_STATUS)],
        description="ops §5.1 (operators; see Health for who sees what).",
    )
    async def health(self, info: Info) -> Health:
        return Health.from_row(await ops_health.health(info.context.ops))

    @strawberry.field(extensions=[allow(policy.ADMIN)], description="ops §5.2 (admin).")
    def diagnostics(self, info: Info) -> Diagnostics:
        return Diagnostics.from_row(ops_health.diagnostics(info.context.ops))


@strawberry.type
class OpsMutation:
    @strawberry.mutation(extensions=[allow(policy.ADMIN)], description="ops §1.2: partial update (admin).")
    async def update_model_config(self, info: Info, input: UpdateModelConfigInput) -> ModelConfigType:
        ctx = info.context
        changed = await ops_config.update(ctx.ops, ctx.principal, input.to_value(), ctx.request_id)
        return ModelConfigType.from_row(*changed)

    @strawberry.mutation(
        extensions=[allow(policy.FEATURE_WRITERS)],
        description="ops §2.2 (admin; region: toggles with regionFlippable only).",
    )
    async def set_feature_toggle(self, info: Info, key: str, enabled: bool) -> FeatureToggle:
        ctx = info.context
        return FeatureToggle.from_row(
            await ops_features.set_toggle(ctx.ops, ctx.principal, key, enabled, ctx.request_id)
        )

    @strawberry.mutation(extensions=[allow(policy.ADMIN)], description="ops §6.2: partial update (admin).")
    async def update_limits(self, info: Info, input: UpdateLimitsInput) -> LimitsType:
        ctx = info.context
        return LimitsType.from_row(
            *await ops_limits.update(ctx.ops, ctx.principal, input.to_value(), ctx.request_id)
        )

    @strawberry.mutation(
        extensions=[allow(policy.ADMIN)], description="Store a new ruleset, validated for its type (admin)."
    )
    async def upload_ruleset(self, info: Info, input: UploadRulesetInput) -> Ruleset:
        ctx = info.context
        view = await ops_rulesets.upload(
            ctx.ops, ctx.principal, input.type, input.ruleset_id, input.document, ctx.request_id
        )
        return Ruleset.from_row(view)

    @strawberry.mutation(
        extensions=[allow(policy.HOT_RELOADERS)],
        description="ops §3.1: activate a ruleset without a restart. Admin: any type; region: content, "
        "difficulty, scenario; country: content. E_RELOAD_FAILED keeps the previous ruleset active.",
    )
    async def hot_reload(
        self,
        info: Info,
        type: RulesetTypeEnum,  # type: ignore[valid-type]
        target_id: str,
    ) -> HotReloadResult:
        ctx = info.context
        return HotReloadResult.from_row(
            await ops_rulesets.hot_reload(ctx.ops, ctx.principal, type, target_id, ctx.request_id)
        )

    @strawberry.mutation(
        extensions=[allow(policy.ADMIN)],
        description="ops §4.2: snapshot every setting and active ruleset as a new release (admin).",
    )
    async def create_release(
        self, info: Info, version: str, notes: str, included_engines: list[str] | None = None
    ) -> Release:
        ctx = info.context
        view = await ops_releases.create_release(
            ctx.ops, ctx.principal, version, notes, included_engines or [], ctx.request_id
        )
        return Release.from_row(view)

    @strawberry.mutation(
        extensions=[allow(policy.ADMIN)],
        description="ops §4.3: restore a release's snapshot atomically; appends a rollback entry (admin).",
    )
    async def rollback_release(self, info: Info, target_version: str) -> RollbackResult:
        ctx = info.context
        return RollbackResult.from_row(
            await ops_releases.rollback(ctx.ops, ctx.principal, target_version, ctx.request_id)
        )

    @strawberry.mutation(
        extensions=[allow(policy.HEARTBEAT_SENDERS)], description="An engine reports that it is alive."
    )
    async def engine_heartbeat(
        self,
        info: Info,
        engine: EngineEnum,  # type: ignore[valid-type]
    ) -> EngineHeartbeatResult:
        ctx = info.context
        return EngineHeartbeatResult.from_row(await ops_health.heartbeat(ctx.ops, ctx.principal, engine))
