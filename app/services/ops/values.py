"""The values ops keeps, validated in one place so GraphQL and REST refuse the same things.

Patches are mappings of the given camelCase fields (omitted = unchanged), so a PATCH body and a
GraphQL input reach the same rules; an unknown field, a null or an out-of-range value is
``E_SCHEMA_MISMATCH`` and nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.errors import SchemaMismatch
from app.services.ops.catalog import (
    AI_CALLS_PER_MINUTE_MAX,
    FILE_UPLOAD_LIMIT_MB_MAX,
    LANGUAGES,
    MAX_CONCURRENT_SESSIONS_MAX,
    TEMPERATURE_MAX,
    TONE_PROFILES,
    RulesetState,
    RulesetType,
)


@dataclass(frozen=True, slots=True)
class Stamp:
    """Who changed a setting last, and when."""

    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """§1: the model settings every AI engine must use."""

    model: str
    temperature: float
    max_tokens: int
    tone_profile: str
    language: str
    enabled: bool

    FIELDS = {
        "model": "model",
        "temperature": "temperature",
        "maxTokens": "max_tokens",
        "toneProfile": "tone_profile",
        "language": "language",
        "enabled": "enabled",
    }

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, attr) for name, attr in self.FIELDS.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelConfig:
        return cls(**{attr: data[name] for name, attr in cls.FIELDS.items()})


@dataclass(frozen=True, slots=True)
class Limits:
    """§6: what engines may consume (see app.services.ops.enforcement for what each counts)."""

    ai_calls_per_minute: int
    file_upload_limit_mb: int
    max_concurrent_sessions: int

    FIELDS = {
        "aiCallsPerMinute": "ai_calls_per_minute",
        "fileUploadLimitMb": "file_upload_limit_mb",
        "maxConcurrentSessions": "max_concurrent_sessions",
    }

    @property
    def file_upload_limit_bytes(self) -> int:
        return self.file_upload_limit_mb * 1024 * 1024

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, attr) for name, attr in self.FIELDS.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        return cls(**{attr: data[name] for name, attr in cls.FIELDS.items()})


@dataclass(frozen=True, slots=True)
class Toggle:
    key: str
    enabled: bool
    description: str
    region_flippable: bool
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class ActiveRuleset:
    """The ruleset one type runs, and the outcome of its last reload."""

    type: RulesetType
    ruleset_id: str | None
    declared_version: str | None
    document: dict[str, Any] | None
    activated_at: datetime | None
    activated_by: str | None
    state: RulesetState
    failed_target_id: str | None
    last_error: str | None
    failed_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpsSnapshot:
    """Everything engines obey, as of ``version`` of ops_state."""

    version: int
    model_config: ModelConfig
    model_config_stamp: Stamp
    limits: Limits
    limits_stamp: Stamp
    toggles: tuple[Toggle, ...]
    rulesets: dict[RulesetType, ActiveRuleset]

    def toggle(self, key: str) -> Toggle | None:
        return next((toggle for toggle in self.toggles if toggle.key == key), None)


def _given(patch: Mapping[str, Any], known: Mapping[str, str], what: str) -> dict[str, Any]:
    unknown = sorted(set(patch) - set(known))
    if unknown:
        raise SchemaMismatch(f"unknown {what} field(s): {', '.join(unknown)}", fields=unknown)
    if not patch:
        raise SchemaMismatch(f"give at least one {what} field to change", fields=sorted(known))
    nulls = sorted(name for name, value in patch.items() if value is None)
    if nulls:
        raise SchemaMismatch(f"{', '.join(nulls)} may not be null", fields=nulls)
    return {known[name]: value for name, value in patch.items()}


def _choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SchemaMismatch(
            f"{field} must be one of: {', '.join(allowed)}", field=field, allowed=list(allowed)
        )
    return value


def _int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SchemaMismatch(f"{field} must be an integer from {low} to {high}", field=field)
    return value


def patch_model_config(
    current: ModelConfig, patch: Mapping[str, Any], allowed_models: Sequence[str], max_tokens_bound: int
) -> ModelConfig:
    """Apply a partial update; every given value is checked, the result is complete."""
    changes = _given(patch, ModelConfig.FIELDS, "model config")
    if "model" in changes:
        _choice("model", changes["model"], allowed_models)
    if "temperature" in changes:
        value = changes["temperature"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= TEMPERATURE_MAX
        ):
            raise SchemaMismatch(
                f"temperature must be a number from 0 to {TEMPERATURE_MAX:g}", field="temperature"
            )
        changes["temperature"] = float(value)
    if "max_tokens" in changes:
        _int("maxTokens", changes["max_tokens"], 1, max_tokens_bound)
    if "tone_profile" in changes:
        _choice("toneProfile", changes["tone_profile"], TONE_PROFILES)
    if "language" in changes:
        _choice("language", changes["language"], LANGUAGES)
    if "enabled" in changes and not isinstance(changes["enabled"], bool):
        raise SchemaMismatch("enabled must be true or false", field="enabled")
    return replace(current, **changes)


LIMIT_BOUNDS = {
    "ai_calls_per_minute": ("aiCallsPerMinute", AI_CALLS_PER_MINUTE_MAX),
    "file_upload_limit_mb": ("fileUploadLimitMb", FILE_UPLOAD_LIMIT_MB_MAX),
    "max_concurrent_sessions": ("maxConcurrentSessions", MAX_CONCURRENT_SESSIONS_MAX),
}


def patch_limits(current: Limits, patch: Mapping[str, Any]) -> Limits:
    changes = _given(patch, Limits.FIELDS, "limits")
    for attr, value in changes.items():
        name, high = LIMIT_BOUNDS[attr]
        _int(name, value, 1, high)
    return replace(current, **changes)
