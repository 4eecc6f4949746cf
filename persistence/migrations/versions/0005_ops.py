"""System operations: ops_state, ops_setting, feature_toggle, ruleset, ruleset_active,
release_history, engine_heartbeat; seeded with the spec's defaults and the default UPM ruleset.

ruleset and release_history are append-only (a ruleset id always names one document; a
rollback is a new history entry).

The seeded values are literals, as they were when this revision shipped: a migration's meaning
must not change when service code changes (the default UPM ruleset, the fallback limits). A new
default ships with a new migration.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from persistence.append_only import drop_append_only, make_append_only

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
SEEDER = "migration-0005"

MODEL_CONFIG = {
    "model": "gpt-5.1",
    "temperature": 0.4,
    "maxTokens": 4096,
    "toneProfile": "professional",
    "language": "auto",
    "enabled": True,
}
LIMITS = {"aiCallsPerMinute": 60, "fileUploadLimitMb": 200, "maxConcurrentSessions": 30}
# key, enabled, description, region_flippable. Region operators may flip the content-side
# toggles; mission assignment and insights stay with admin (ops §8).
TOGGLES = (
    ("mission_auto_assign", True, "Mission Engine assigns missions automatically from UPM results.", False),
    ("insight_generation", True, "Insights Engine generates insights from the daily snapshots.", False),
    ("quiz_auto_generate", False, "Quiz Engine generates quizzes with the AI model.", True),
    ("content_ai_transform", True, "Content Engine transforms learning content with the AI model.", True),
)
UPM_RULESET_ID = "upm_default_v1"
UPM_RULESET = {
    "version": "1",
    "skillWeights": {
        "scenario": {"upsell": 0.05, "objection_handling": 0.04, "product_knowledge": 0.01},
        "quiz": {"upsell": 0.0, "objection_handling": 0.0, "product_knowledge": 0.05},
        "learning": {"upsell": 0.01, "objection_handling": 0.01, "product_knowledge": 0.03},
        "mission": {"upsell": 0.03, "objection_handling": 0.02, "product_knowledge": 0.02},
    },
    "behaviorScore": {
        "aggregation": "ema",
        "emaAlpha": 0.3,
        "minTurns": 3,
        "weights": {"engineScore": 0.6, "upsellSuccess": 0.25, "objectionHandling": 0.15},
    },
    "quizThresholds": {"strengthAccuracy": 0.8, "weaknessAccuracy": 0.5, "minAttempts": 2},
}
# sha256 of the document's canonical JSON (sorted keys, no spaces), as rulesets verify it.
UPM_RULESET_HASH = "21dda7996569771ca557863a45c09dfdd4547c96e149e2448e80f69e986ea3f7"
RULESET_TYPES = (
    "scenario",
    "prompt",
    "difficulty",
    "content",
    "gamification",
    "upm",
    "insights",
    "mission",
    "system",
)
ENGINES = ("scenario", "prompt", "difficulty", "content", "gamification", "missions", "upm", "insights")


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
            {"key": "model_config", "value": MODEL_CONFIG, "updated_at": now, "updated_by": SEEDER},
            {"key": "limits", "value": LIMITS, "updated_at": now, "updated_by": SEEDER},
        ],
    )
    op.bulk_insert(
        toggle,
        [
            {
                "key": key,
                "enabled": enabled,
                "description": description,
                "region_flippable": region_flippable,
                "updated_at": now,
                "updated_by": SEEDER,
            }
            for key, enabled, description, region_flippable in TOGGLES
        ],
    )
    op.bulk_insert(
        ruleset,
        [
            {
                "ruleset_id": UPM_RULESET_ID,
                "engine_type": "upm",
                "declared_version": UPM_RULESET["version"],
                "document": UPM_RULESET,
                "content_hash": UPM_RULESET_HASH,
                "uploaded_at": now,
                "uploaded_by": SEEDER,
            }
        ],
    )
    op.bulk_insert(
        active,
        [
            {
                "engine_type": kind,
                "ruleset_id": UPM_RULESET_ID if kind == "upm" else None,
                "activated_at": now if kind == "upm" else None,
                "activated_by": SEEDER if kind == "upm" else None,
                "state": "ok",
            }
            for kind in RULESET_TYPES
        ],
    )
    op.bulk_insert(heartbeat, [{"engine": engine, "beats": 0} for engine in ENGINES])


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
