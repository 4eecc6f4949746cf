"""Live analytics: per-(user, day) counters, per-day scope-path sums, and the deriver's watermark.

The deriver (app.services.analytics.live) folds newly committed raw records into
these tables; buildSnapshots finalises a day from them. Raw logs stay append-only:
they only gain a ``txid`` column, filled by PostgreSQL with the inserting
transaction's id (the deriver's watermark is a snapshot of transaction ids, since
sequence order is not commit order there). SQLite leaves it NULL: with a single
writer, ``seq`` order is commit order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RAW_LOGS = ("event_log", "interaction_log", "session_log")
TZ = sa.DateTime(timezone=True)
SCOPE = ("region_id", "country_id", "branch_id", "team_id")
VERSIONS = ("module_version", "scenario_version", "prompt_version")
USER_COUNTERS = (
    "logins",
    "module_started",
    "module_completed",
    "quiz_completed",
    "quiz_passed",
    "saleslab_sessions",
    "upsell_attempts",
    "upsell_successes",
    "badge_claims",
)
PATH_COUNTERS = (
    "users",
    "active_users",
    "module_started",
    "module_completed",
    "quiz_completed",
    "quiz_passed",
    "saleslab_sessions",
    "upsell_attempts",
    "upsell_successes",
    "xp_gained",
    "xp_total_sum",
)
# The inserting transaction's id as a number (xid8 has no cast to bigint).
TXID_DEFAULT = "(pg_current_xact_id()::text)::bigint"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in RAW_LOGS:
        # nullable, no default at first: no table rewrite, no UPDATE of a stored row
        op.add_column(table, sa.Column("txid", sa.BigInteger(), nullable=True))
        if postgres:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN txid SET DEFAULT {TXID_DEFAULT}")
        op.create_index(f"ix_{table}_txid", table, ["txid"])

    op.create_table(
        "live_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("pg_snapshot", sa.Text()),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("interaction_seq", sa.BigInteger(), nullable=False),
        sa.Column("session_seq", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("folds", sa.BigInteger(), nullable=False),
        sa.Column("folded_at", TZ),
        sa.Column("holder", sa.String(128)),
    )
    op.execute(
        "INSERT INTO live_state (name, event_seq, interaction_seq, session_seq, records, folds) "
        "VALUES ('deriver', 0, 0, 0, 0, 0)"
    )
    op.create_table(
        "live_day",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("quiz_pass_threshold", sa.Float(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
    )
    op.create_table(
        "live_user_day",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in USER_COUNTERS),
        sa.Column("xp_gained", sa.BigInteger(), nullable=False),
        sa.Column("xp_base", sa.BigInteger(), nullable=False),
        sa.Column("latest_at", TZ, nullable=False),
        sa.Column("latest_source", sa.Integer(), nullable=False),
        sa.Column("latest_seq", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.String(64)) for name in VERSIONS),
        *(sa.Column(name, sa.String(128), nullable=False) for name in SCOPE),
    )
    op.create_index("ix_live_user_day_path", "live_user_day", ["day", *SCOPE])
    op.create_table(
        "live_user_badge",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("badge", sa.String(256), primary_key=True),
    )
    op.create_table(
        "live_path_day",
        sa.Column("day", sa.Date(), primary_key=True),
        *(sa.Column(name, sa.String(128), primary_key=True) for name in SCOPE),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in PATH_COUNTERS),
        sa.Column("latest_at", TZ, nullable=False),
        sa.Column("latest_user", sa.String(128), nullable=False),
        *(sa.Column(name, sa.String(64)) for name in VERSIONS),
    )


def downgrade() -> None:
    for table in ("live_path_day", "live_user_badge", "live_user_day", "live_day", "live_state"):
        op.drop_table(table)
    for table in RAW_LOGS:
        op.drop_index(f"ix_{table}_txid", table_name=table)
        op.drop_column(table, "txid")
