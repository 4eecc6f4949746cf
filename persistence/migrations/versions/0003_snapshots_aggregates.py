"""Derived analytics: snapshot_build, snapshot_daily_user and the four scope aggregates.

These tables are rebuilt from their sources, so unlike the raw logs they carry
no append-only triggers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
LEVELS = ("region", "country", "branch", "team")


def _aggregate_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    counters = (
        "users",
        "active_users",
        "module_started",
        "module_completed",
        "quiz_completed",
        "quiz_passed",
        "saleslab_sessions",
        "upsell_attempts",
        "upsell_successes",
    )
    return [
        *(sa.Column(name, sa.Integer(), nullable=False) for name in counters),
        sa.Column("xp_gained", sa.BigInteger(), nullable=False),
        sa.Column("xp_total_sum", sa.BigInteger(), nullable=False),
        sa.Column("module_completion_rate", sa.Float()),
        sa.Column("quiz_pass_rate", sa.Float()),
        sa.Column("avg_upsell_success_rate", sa.Float()),
        sa.Column("avg_xp_total", sa.Float()),
        sa.Column("module_version", sa.String(64)),
        sa.Column("scenario_version", sa.String(64)),
        sa.Column("prompt_version", sa.String(64)),
        sa.Column("latest_at", TZ, nullable=False),
        sa.Column("built_at", TZ, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "snapshot_build",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("built_at", TZ, nullable=False),
        sa.Column("built_by", sa.String(128), nullable=False),
        sa.Column("snapshots", sa.Integer(), nullable=False),
        sa.Column("rebuilds", sa.Integer(), nullable=False),
        sa.Column("quiz_pass_threshold", sa.Float(), nullable=False),
    )
    op.create_table(
        "snapshot_daily_user",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("logged_in", sa.Boolean(), nullable=False),
        sa.Column("module_started", sa.Integer(), nullable=False),
        sa.Column("module_completed", sa.Integer(), nullable=False),
        sa.Column("quiz_completed", sa.Integer(), nullable=False),
        sa.Column("quiz_passed", sa.Integer(), nullable=False),
        sa.Column("saleslab_sessions", sa.Integer(), nullable=False),
        sa.Column("upsell_attempts", sa.Integer(), nullable=False),
        sa.Column("upsell_successes", sa.Integer(), nullable=False),
        sa.Column("xp_gained", sa.BigInteger(), nullable=False),
        sa.Column("xp_total", sa.BigInteger(), nullable=False),
        sa.Column("badges_owned", sa.JSON(), nullable=False),
        sa.Column("latest_at", TZ, nullable=False),
        sa.Column("latest_module_version", sa.String(64)),
        sa.Column("latest_scenario_version", sa.String(64)),
        sa.Column("latest_prompt_version", sa.String(64)),
        *(sa.Column(f"{level}_id", sa.String(128), nullable=False) for level in LEVELS),
    )
    op.create_index("ix_snapshot_daily_user_user_day", "snapshot_daily_user", ["user_id", "day"])
    for depth, level in enumerate(LEVELS):
        table = f"agg_{level}"
        op.create_table(
            table,
            sa.Column("day", sa.Date(), primary_key=True),
            sa.Column(f"{level}_id", sa.String(128), primary_key=True),
            *(sa.Column(f"{parent}_id", sa.String(128), nullable=False) for parent in LEVELS[:depth]),
            *_aggregate_columns(),
        )
        op.create_index(f"ix_{table}_unit_day", table, [f"{level}_id", "day"])


def downgrade() -> None:
    for level in reversed(LEVELS):
        op.drop_table(f"agg_{level}")
    op.drop_table("snapshot_daily_user")
    op.drop_table("snapshot_build")
