"""The names ops works with: engine types, engines, statuses and the allowed setting values."""

from __future__ import annotations

from enum import StrEnum


class RulesetType(StrEnum):
    """The hot-reload types of ops §3.1 (lower case, as the spec writes them)."""

    scenario = "scenario"
    prompt = "prompt"
    difficulty = "difficulty"
    content = "content"
    gamification = "gamification"
    upm = "upm"
    insights = "insights"
    mission = "mission"
    system = "system"


class Engine(StrEnum):
    """The engines of the health report (ops §5.1 ``engines``); they send heartbeats."""

    scenario = "scenario"
    prompt = "prompt"
    difficulty = "difficulty"
    content = "content"
    gamification = "gamification"
    missions = "missions"
    upm = "upm"
    insights = "insights"


# The ruleset type each engine runs; the "system" ruleset belongs to no one engine and
# counts towards the overall status only.
ENGINE_RULESET: dict[Engine, RulesetType] = {
    Engine.scenario: RulesetType.scenario,
    Engine.prompt: RulesetType.prompt,
    Engine.difficulty: RulesetType.difficulty,
    Engine.content: RulesetType.content,
    Engine.gamification: RulesetType.gamification,
    Engine.missions: RulesetType.mission,
    Engine.upm: RulesetType.upm,
    Engine.insights: RulesetType.insights,
}

# A release's includedEngines names engines (ops §4.2 writes "missions") or the system.
RELEASE_ENGINES = (*(engine.value for engine in Engine), "system")


class RulesetState(StrEnum):
    ok = "ok"
    degraded = "degraded"


class EngineStatus(StrEnum):
    """ok: heartbeat within the window; stale: older; unknown: never; degraded: failed reload."""

    ok = "ok"
    stale = "stale"
    unknown = "unknown"
    degraded = "degraded"


class HealthStatus(StrEnum):
    """ok; degraded: an engine is stale or degraded, or the coordination store (Redis, or
    PostgreSQL's limits and NOTIFY) is unreachable; down: the database is unreachable."""

    ok = "ok"
    degraded = "degraded"
    down = "down"


class ReleaseKind(StrEnum):
    release = "release"
    rollback = "rollback"


# §1 allowed values. Models come from settings (TRAINER_OPS_ALLOWED_MODELS).
TONE_PROFILES = ("professional", "coaching", "friendly", "neutral")
LANGUAGES = ("auto", "ko", "en", "ja", "zh", "de", "fr", "es", "it", "pt", "vi", "th", "id")
TEMPERATURE_MAX = 2.0

# §6 bounds of the limits themselves.
AI_CALLS_PER_MINUTE_MAX = 100_000
FILE_UPLOAD_LIMIT_MB_MAX = 10_240
MAX_CONCURRENT_SESSIONS_MAX = 10_000

SETTING_MODEL_CONFIG = "model_config"
SETTING_LIMITS = "limits"

# Audit actions of ops changes (app.services.audit accepts these; each is its own §7.1 category
# or belongs to update_config).
ACTION_UPDATE_MODEL_CONFIG = "update_config"
ACTION_SET_FEATURE_TOGGLE = "set_feature_toggle"
ACTION_UPDATE_LIMITS = "update_limits"
ACTION_UPLOAD_RULESET = "upload_ruleset"
ACTION_HOT_RELOAD = "reload"
ACTION_CREATE_RELEASE = "publish"
ACTION_ROLLBACK_RELEASE = "rollback_release"
