"""System operations: ops_state, ops_setting, feature_toggle, ruleset, ruleset_active,
release_history, engine_heartbeat; seeded with the spec's defaults and the default UPM ruleset.

ruleset and release_history are append-only (a ruleset id always names one document; a
rollback is a new history entry).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from app.services.ops.catalog import SETTING_LIMITS, SETTING_MODEL_CONFIG, Engine, RulesetType
from app.services.ops.defaults import DEFAULT_LIMITS, DEFAULT_MODEL_CONFIG, DEFAULT_TOGGLES
from app.services.ops.documents import content_hash
from app.services.upm.ruleset import DEFAULT_UPM_RULESET, DEFAULT_UPM_RULESET_ID
from persistence.append_only import drop_append_only, make_append_only

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
SEEDER = "migration-0005"


def upgrade() -> None:
    state = op.create_table(
        "ops_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
    )
    setting = op.create_table(
        "ops_setting",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    toggle = op.create_table(
        "feature_toggle",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(512), nullable=False),
        sa.Column("region_flippable", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    ruleset = op.create_table(
        "ruleset",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("ruleset_id", sa.String(128), nullable=False, unique=True),
        sa.Column("engine_type", sa.String(16), nullable=False),
        sa.Column("declared_version", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("uploaded_at", TZ, nullable=False),
        sa.Column("uploaded_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_ruleset_type_seq", "ruleset", ["engine_type", "seq"])
    active = op.create_table(
        "ruleset_active",
        sa.Column("engine_type", sa.String(16), primary_key=True),
        sa.Column("ruleset_id", sa.String(128)),
        sa.Column("activated_at", TZ),
        sa.Column("activated_by", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failed_target_id", sa.String(128)),
        sa.Column("last_error", sa.Text()),
        sa.Column("failed_at", TZ),
    )
    op.create_table(
        "release_history",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(32), unique=True),
        sa.Column("target_version", sa.String(32)),
        sa.Column("previous_version", sa.String(32)),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("included_engines", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    heartbeat = op.create_table(
        "engine_heartbeat",
        sa.Column("engine", sa.String(16), primary_key=True),
        sa.Column("last_seen_at", TZ),
        sa.Column("sent_by", sa.String(128)),
        sa.Column("beats", sa.BigInteger(), nullable=False),
    )
    # Abort (not ignore) a colliding insert on SQLite: an upload must never vanish silently.
    make_append_only("ruleset", "ruleset_id", on_collision="abort")
    make_append_only("release_history", "seq", on_collision="abort")

    now = datetime.now(UTC)
    op.bulk_insert(state, [{"id": 1, "version": 1, "changed_at": now}])
    op.bulk_insert(
        setting,
        [
            {
                "key": SETTING_MODEL_CONFIG,
                "value": DEFAULT_MODEL_CONFIG,
                "updated_at": now,
                "updated_by": SEEDER,
            },
            {"key": SETTING_LIMITS, "value": DEFAULT_LIMITS, "updated_at": now, "updated_by": SEEDER},
        ],
    )
    op.bulk_insert(
        toggle,
        [
            {
                "key": seed.key,
                "enabled": seed.enabled,
                "description": seed.description,
                "region_flippable": seed.region_flippable,
                "updated_at": now,
                "updated_by": SEEDER,
            }
            for seed in DEFAULT_TOGGLES
        ],
    )
    document = DEFAULT_UPM_RULESET.document()
    op.bulk_insert(
        ruleset,
        [
            {
                "ruleset_id": DEFAULT_UPM_RULESET_ID,
                "engine_type": RulesetType.upm.value,
                "declared_version": DEFAULT_UPM_RULESET.version,
                "document": document,
                "content_hash": content_hash(document),
                "uploaded_at": now,
                "uploaded_by": SEEDER,
            }
        ],
    )
    op.bulk_insert(
        active,
        [
            {
                "engine_type": kind.value,
                "ruleset_id": DEFAULT_UPM_RULESET_ID if kind is RulesetType.upm else None,
                "activated_at": now if kind is RulesetType.upm else None,
                "activated_by": SEEDER if kind is RulesetType.upm else None,
                "state": "ok",
            }
            for kind in RulesetType
        ],
    )
    op.bulk_insert(heartbeat, [{"engine": engine.value, "beats": 0} for engine in Engine])


def downgrade() -> None:
    for table in ("release_history", "ruleset"):
        drop_append_only(table)
    for table in (
        "engine_heartbeat",
        "release_history",
        "ruleset_active",
        "ruleset",
        "feature_toggle",
        "ops_setting",
        "ops_state",
    ):
        op.drop_table(table)
