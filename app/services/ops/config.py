"""Model config (ops §1): what model and generation settings every AI engine must use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.auth import Principal
from app.services.ops.catalog import ACTION_UPDATE_MODEL_CONFIG, SETTING_MODEL_CONFIG
from app.services.ops.state import OpsRuntime
from app.services.ops.values import ModelConfig, Stamp, patch_model_config


async def read(ops: OpsRuntime) -> tuple[ModelConfig, Stamp]:
    """From the worker's cache: what engines are told is what the limits and reloads use."""
    snapshot = await ops.current()
    return snapshot.model_config, snapshot.model_config_stamp


async def update(
    ops: OpsRuntime, principal: Principal, patch: Mapping[str, Any], request_id: str
) -> tuple[ModelConfig, Stamp]:
    """Partial update; an invalid value refuses the whole patch (E_SCHEMA_MISMATCH)."""
    settings = ops.settings

    def patched(before: ModelConfig) -> ModelConfig:
        return patch_model_config(before, patch, settings.ops_allowed_models, settings.ops_max_tokens_bound)

    return await ops.change_setting(
        SETTING_MODEL_CONFIG,
        principal,
        ACTION_UPDATE_MODEL_CONFIG,
        request_id,
        ModelConfig.from_json,
        patched,
    )
