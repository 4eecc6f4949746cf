"""Model config (ops §1): what model and generation settings every AI engine must use."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.auth import Principal
from app.services.ops.catalog import ACTION_UPDATE_MODEL_CONFIG, SETTING_MODEL_CONFIG
from app.services.ops.state import OpsRuntime
from app.services.ops.values import ModelConfig, Stamp, patch_model_config
from persistence.models.ops import OpsSettingRow


async def read(ops: OpsRuntime) -> tuple[ModelConfig, Stamp]:
    """From the worker's cache: what engines are told is what the limits and reloads use."""
    snapshot = await ops.current()
    return snapshot.model_config, snapshot.model_config_stamp


async def update(
    ops: OpsRuntime, principal: Principal, patch: Mapping[str, Any], request_id: str
) -> tuple[ModelConfig, Stamp]:
    """Partial update; an invalid value refuses the whole patch (E_SCHEMA_MISMATCH)."""
    async with ops.change() as session:
        row = await session.get(OpsSettingRow, SETTING_MODEL_CONFIG)
        assert row is not None, "migration 0005 seeds the model config"
        before = ModelConfig.from_json(row.value)
        after = patch_model_config(
            before, patch, ops.settings.ops_allowed_models, ops.settings.ops_max_tokens_bound
        )
        stamp = Stamp(datetime.now(UTC), principal.sub)
        row.value, row.updated_at, row.updated_by = after.to_json(), stamp.at, stamp.by
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_UPDATE_MODEL_CONFIG,
            target="model_config",
            before=before.to_json(),
            after=after.to_json(),
            request_id=request_id,
        )
    return after, stamp
