"""Append-only raw logs: event_log, interaction_log, session_log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from persistence.append_only import drop_append_only, make_append_only

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def _common() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("module_version", sa.String(64)),
        sa.Column("scenario_version", sa.String(64)),
        sa.Column("prompt_version", sa.String(64)),
        sa.Column("region_id", sa.String(128), nullable=False),
        sa.Column("country_id", sa.String(128), nullable=False),
        sa.Column("branch_id", sa.String(128), nullable=False),
        sa.Column("team_id", sa.String(128), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("sent_by", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "event_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("module_id", sa.String(128)),
        sa.Column("quiz_id", sa.String(128)),
        sa.Column("scenario_id", sa.String(128)),
        sa.Column("turn_index", sa.Integer()),
        sa.Column("action", sa.String(256)),
        *_common(),
    )
    op.create_index("ix_event_log_day_user", "event_log", ["day", "user_id"])
    op.create_index("ix_event_log_user_seq", "event_log", ["user_id", "seq"])

    op.create_table(
        "interaction_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("interaction_id", sa.String(64), nullable=False, unique=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("output", sa.Text()),
        sa.Column("difficulty_level", sa.Float()),
        sa.Column("persona_id", sa.String(128)),
        sa.Column("trait_activation", sa.JSON(), nullable=False),
        sa.Column("upsell_triggered", sa.Boolean(), nullable=False),
        *_common(),
    )
    op.create_index("ix_interaction_log_day_user", "interaction_log", ["day", "user_id"])
    op.create_index("ix_interaction_log_user_seq", "interaction_log", ["user_id", "seq"])
    op.create_index("ix_interaction_log_session", "interaction_log", ["session_id"])

    op.create_table(
        "session_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("start_time", TZ, nullable=False),
        sa.Column("end_time", TZ, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("duration_sec", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("turn_count", sa.Integer(), nullable=False),
        sa.Column("correct_answers", sa.Integer()),
        sa.Column("upsell_attempts", sa.Integer()),
        sa.Column("upsell_success", sa.Boolean()),
        *_common(),
    )
    op.create_index("ix_session_log_day_user", "session_log", ["day", "user_id"])
    op.create_index("ix_session_log_user_seq", "session_log", ["user_id", "seq"])

    make_append_only("event_log", "event_id")
    make_append_only("interaction_log", "interaction_id")
    make_append_only("session_log", "session_id")


def downgrade() -> None:
    for table in ("session_log", "interaction_log", "event_log"):
        drop_append_only(table)
        op.drop_table(table)
