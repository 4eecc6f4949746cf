"""System operations state (ops §1-§6): settings, toggles, rulesets, releases, heartbeats.

``ops_state.version`` grows by one with every committed change to what engines obey (settings,
toggles, limits, active rulesets); each worker compares it with the version it has cached,
so every process sees a change within a fraction of a second without a restart. Rulesets and
the release history are append-only in the database (migration 0005): a ruleset id always
means the same document, and a rollback is a new history entry, never an edit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

SEQ_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tz(nullable: bool = False) -> Any:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


class OpsStateRow(SQLModel, table=True):
    """One row (id 1): the version of the ops settings, bumped in every change's transaction.

    Bumping it first also serialises concurrent changes (the row is locked until commit).
    """

    __tablename__ = "ops_state"

    id: int = Field(primary_key=True)
    version: int = Field(sa_type=sa.BigInteger)
    changed_at: datetime = Field(sa_column=_tz())


class OpsSettingRow(SQLModel, table=True):
    """A settings document by key: ``model_config`` (§1) and ``limits`` (§6), camelCase JSON."""

    __tablename__ = "ops_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    updated_at: datetime = Field(sa_column=_tz())
    updated_by: str = Field(max_length=128)


class FeatureToggleRow(SQLModel, table=True):
    """§2: a feature toggle, and whether a region operator may flip it (§8 "⚠️ 일부")."""

    __tablename__ = "feature_toggle"

    key: str = Field(primary_key=True, max_length=64)
    enabled: bool
    description: str = Field(max_length=512)
    region_flippable: bool
    updated_at: datetime = Field(sa_column=_tz())
    updated_by: str = Field(max_length=128)


class RulesetRow(SQLModel, table=True):
    """§3: an uploaded ruleset document. Append-only: an id always names the same document."""

    __tablename__ = "ruleset"
    __table_args__ = (sa.Index("ix_ruleset_type_seq", "engine_type", "seq"),)

    seq: int | None = Field(default=None, sa_column=sa.Column(SEQ_TYPE, primary_key=True, autoincrement=True))
    ruleset_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, unique=True))
    engine_type: str = Field(max_length=16)
    declared_version: str = Field(max_length=64)
    document: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    # sha256 of the canonical JSON: a reload refuses a document that no longer matches it.
    content_hash: str = Field(max_length=64)
    uploaded_at: datetime = Field(sa_column=_tz())
    uploaded_by: str = Field(max_length=128)


class ActiveRulesetRow(SQLModel, table=True):
    """The ruleset each engine type runs, and whether its last reload failed (degraded)."""

    __tablename__ = "ruleset_active"

    engine_type: str = Field(primary_key=True, max_length=16)
    ruleset_id: str | None = Field(default=None, max_length=128)
    activated_at: datetime | None = Field(default=None, sa_column=_tz(nullable=True))
    activated_by: str | None = Field(default=None, max_length=128)
    state: str = Field(max_length=16)
    failed_target_id: str | None = Field(default=None, max_length=128)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    failed_at: datetime | None = Field(default=None, sa_column=_tz(nullable=True))


class ReleaseRow(SQLModel, table=True):
    """§4: the release history, append-only. A release snapshots every setting and the active
    ruleset per type; a rollback restores one and is recorded as its own entry."""

    __tablename__ = "release_history"

    seq: int | None = Field(default=None, sa_column=sa.Column(SEQ_TYPE, primary_key=True, autoincrement=True))
    kind: str = Field(max_length=16)
    # Set on releases only (unique: NULLs of rollback entries do not collide).
    version: str | None = Field(default=None, sa_column=sa.Column(sa.String(32), nullable=True, unique=True))
    # Rollback entries: the version restored and the one that was current before.
    target_version: str | None = Field(default=None, max_length=32)
    previous_version: str | None = Field(default=None, max_length=32)
    notes: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    included_engines: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    snapshot: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    created_at: datetime = Field(sa_column=_tz())
    created_by: str = Field(max_length=128)


class EngineHeartbeatRow(SQLModel, table=True):
    """The last heartbeat of each engine (one row per engine, seeded, updated in place)."""

    __tablename__ = "engine_heartbeat"

    engine: str = Field(primary_key=True, max_length=16)
    last_seen_at: datetime | None = Field(default=None, sa_column=_tz(nullable=True))
    sent_by: str | None = Field(default=None, max_length=128)
    beats: int = Field(default=0, sa_type=sa.BigInteger)


class LimitBucketRow(SQLModel, table=True):
    """An engine's aiCallsPerMinute bucket, shared by every worker (PostgreSQL without Redis).

    Counters, not records: UNLOGGED on PostgreSQL (a crash resets them to full buckets).
    Times are PostgreSQL's own clock in epoch seconds, so instances never disagree.
    """

    __tablename__ = "limit_bucket"

    key: str = Field(primary_key=True, max_length=128)
    tokens: float
    capacity: int
    updated: float


class LimitLeaseRow(SQLModel, table=True):
    """An operation in flight (maxConcurrentSessions); it expires unless its process renews it."""

    __tablename__ = "limit_lease"
    __table_args__ = (sa.Index("ix_limit_lease_key", "key"),)

    token: str = Field(primary_key=True, max_length=64)
    key: str = Field(max_length=128)
    expires: float
