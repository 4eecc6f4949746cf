"""User Performance Monitor state: profiles, topics, modules, missions, skills, idempotency.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _int(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), nullable=False)


def _float(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Float(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "upm_profile",
        sa.Column("user_id", sa.String(128), primary_key=True),
        _int("scenario_sessions"),
        _int("scenario_turns"),
        _int("scenario_upsell_successes"),
        _int("scenario_objections"),
        _float("behavior_sum"),
        _int("behavior_count"),
        sa.Column("behavior_ema", sa.Float()),
        _int("quiz_count"),
        _float("quiz_accuracy_sum"),
        _int("learning_logs"),
        _int("learning_completed_logs"),
        _float("learning_minutes"),
        _int("missions_completed"),
        _int("missions_failed"),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "upm_topic",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("topic", sa.String(128), primary_key=True),
        _int("quizzes"),
        _int("correct"),
        _int("total"),
    )
    op.create_table(
        "upm_module",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("module_id", sa.String(128), primary_key=True),
        _int("logs"),
        _int("completions"),
    )
    op.create_table(
        "upm_mission",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("mission_id", sa.String(128), primary_key=True),
        _int("successes"),
        _int("failures"),
        sa.Column("last_success", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "upm_skill",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("skill_id", sa.String(64), primary_key=True),
        _float("mastery"),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "upm_log",
        sa.Column("log_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("upm_log", "upm_skill", "upm_mission", "upm_module", "upm_topic", "upm_profile"):
        op.drop_table(table)
