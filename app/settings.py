"""Settings come from the environment (prefix ``TRAINER_``) with safe development defaults."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-do-not-use-in-production"
DEV_AUDIT_SECRET = "dev-only-audit-secret-do-not-use-in-production"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/trainer-console.db"
# data-layer §3.1 eventType: the spec's list plus the ones the UPM and gamification documents imply.
DEFAULT_EVENT_TYPES = (
    "login",
    "logout",
    "module_start",
    "module_complete",
    "quiz_start",
    "quiz_answer",
    "quiz_complete",
    "saleslab_start",
    "saleslab_turn",
    "saleslab_complete",
    "mission_start",
    "mission_complete",
    "mission_fail",
    "reward_claim",
)

# ops §1: models an operator may choose (the spec's example first).
DEFAULT_MODELS = ("gpt-5.1", "gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini")


class InsecureSettingsError(RuntimeError):
    """Raised at start-up when production would run with development secrets."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINER_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("TRAINER_DATABASE_URL", "DATABASE_URL"),
    )
    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithm: Literal["HS256"] = "HS256"
    # The HMAC key of the audit hash chain (ops §9). Keep it out of the database: whoever holds
    # it can rewrite history undetectably. Changing it makes every existing entry fail auditVerify.
    audit_secret: str = DEV_AUDIT_SECRET
    # Request protection, on by default.
    max_query_depth: int = Field(default=10, ge=1)
    max_aliases: int = Field(default=15, ge=1)
    max_tokens: int = Field(default=2000, ge=10)
    # Fields of a document with every fragment spread expanded (fragments nest: a short text
    # can expand to millions of fields, which the depth and alias rules would walk).
    max_expanded_fields: int = Field(default=10_000, ge=10)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_page_size: int = Field(default=100, ge=1)
    db_pool_size: int = Field(default=10, ge=1)
    # Analytics (data-layer §4.3, §3.5): a quiz session passes when correctAnswers / turnCount
    # reaches this share; `aggregates` reads at most this many days and rows per request.
    quiz_pass_threshold: float = Field(default=0.7, gt=0, le=1)
    aggregates_max_days: int = Field(default=31, ge=1)
    aggregates_max_rows: int = Field(default=5000, ge=1)
    # Live analytics (app.services.analytics.live): the deriver folding new raw records into the
    # day's counters runs in the app's lifespan, polling this often (seconds).
    live_derive: bool = True
    live_derive_interval: float = Field(default=0.5, gt=0, le=60)
    # Ingestion (data-layer §3, §6): records per logEvents/logInteractions/logSessions call, and the
    # allowed eventTypes (TRAINER_EVENT_TYPES, comma-separated or a JSON list; replaces the default).
    max_batch_records: int = Field(default=5000, ge=1)
    event_types: Annotated[tuple[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")], ...], NoDecode] = Field(
        default=DEFAULT_EVENT_TYPES, min_length=1
    )
    # System operations (ops-api-v2): how often a worker checks ops_state.version for changes
    # made elsewhere; after how long without a heartbeat an engine is stale; the window of
    # diagnostics; the models updateModelConfig accepts (TRAINER_OPS_ALLOWED_MODELS, comma-separated
    # or a JSON list) and the largest maxTokens it accepts.
    ops_refresh_seconds: float = Field(default=0.5, gt=0, le=60)
    ops_engine_stale_seconds: float = Field(default=60.0, gt=0)
    ops_diagnostics_window_seconds: float = Field(default=300.0, ge=10)
    ops_allowed_models: Annotated[tuple[str, ...], NoDecode] = Field(default=DEFAULT_MODELS, min_length=1)
    ops_max_tokens_bound: int = Field(default=32768, ge=1)
    # What the workers of one deployment share (app.coordination): the engine limits and live
    # updates. ``auto``: Redis when TRAINER_REDIS_URL is set, else PostgreSQL when that is the
    # database, else this process's memory (SQLite serves one worker). ``memory`` on PostgreSQL
    # says there is one process; `serve --workers N` then refuses to start.
    coordination: Literal["auto", "memory", "postgres", "redis"] = "auto"
    redis_url: str | None = None
    redis_prefix: str = Field(default="trainer", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # An in-flight slot of maxConcurrentSessions expires this long after its process stops
    # renewing it (a worker killed mid-operation); a live process renews every third of it.
    coordination_lease_seconds: float = Field(default=15.0, ge=0.3, le=3600)
    # How long a limit check waits for the shared store before counting in this process.
    coordination_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    log_level: str = "INFO"
    # Observability (app.observability): `json` writes one JSON object per log line, `text` the
    # plain format; /metrics needs `Authorization: Bearer <TRAINER_METRICS_TOKEN>` when it is set,
    # is open in development without it, and is off (404) in production without it.
    log_format: Literal["json", "text"] = "json"
    metrics_token: str | None = Field(default=None, min_length=16)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept the plain URLs people paste and give SQLAlchemy the async driver."""
        for plain, async_ in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return async_ + url[len(plain) :]
        return url

    @field_validator("event_types", "ops_allowed_models", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        """Operators write ``login,logout,...`` or ``gpt-5.1,gpt-5`` in an env file; a JSON list
        works too."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _coordination_store(self) -> Settings:
        if self.coordination == "redis" and not self.redis_url:
            raise ValueError("TRAINER_COORDINATION=redis needs TRAINER_REDIS_URL")
        if self.coordination == "postgres" and self.is_sqlite:
            raise ValueError("TRAINER_COORDINATION=postgres needs a PostgreSQL TRAINER_DATABASE_URL")
        return self

    @property
    def coordination_backend(self) -> str:
        """The store ``auto`` resolves to: redis, postgres or memory."""
        if self.coordination != "auto":
            return self.coordination
        if self.redis_url:
            return "redis"
        return "memory" if self.is_sqlite else "postgres"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def check_safe(self) -> None:
        """Refuse to serve production with the development JWT or audit secret."""
        if self.is_production and (self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32):
            raise InsecureSettingsError(
                "TRAINER_ENV=production needs TRAINER_JWT_SECRET set to a secret of 32+ characters"
            )
        if self.is_production and (
            self.audit_secret in (DEV_AUDIT_SECRET, self.jwt_secret) or len(self.audit_secret) < 32
        ):
            raise InsecureSettingsError(
                "TRAINER_ENV=production needs TRAINER_AUDIT_SECRET set to its own secret of 32+ characters"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
