"""Live analytics tables (migration 0009): what the deriver maintains between builds.

- ``live_state``: the deriver's watermark (one row), committed with the counters it covers.
- ``live_day``: per UTC day with counted records, the quiz pass threshold its counters use
  and whether a finalised day received records after its build (stale).
- ``live_user_day``: per (user, day) counters, everything a snapshot carries for the day.
- ``live_user_badge``: the badges a user claimed that day.
- ``live_path_day``: the day's users summed per scope path; live KPIs, rankings and aggregates
  are made from these rows (never from the raw logs, P-05).

Plain Core tables on the shared metadata: only the deriver writes them, set-based.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

_TZ = sa.DateTime(timezone=True)
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

LIVE_STATE = sa.Table(
    "live_state",
    SQLModel.metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    # PostgreSQL: the pg_snapshot of the last fold (every transaction visible in it is folded).
    sa.Column("pg_snapshot", sa.Text()),
    # SQLite: the last folded seq of each raw log (one writer: seq order is commit order).
    sa.Column("event_seq", sa.BigInteger(), nullable=False),
    sa.Column("interaction_seq", sa.BigInteger(), nullable=False),
    sa.Column("session_seq", sa.BigInteger(), nullable=False),
    sa.Column("records", sa.BigInteger(), nullable=False),
    sa.Column("folds", sa.BigInteger(), nullable=False),
    sa.Column("folded_at", _TZ),
    sa.Column("holder", sa.String(128)),
)

LIVE_DAY = sa.Table(
    "live_day",
    SQLModel.metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("quiz_pass_threshold", sa.Float(), nullable=False),
    sa.Column("stale", sa.Boolean(), nullable=False),
    sa.Column("changed_at", _TZ, nullable=False),
)

LIVE_USER_DAY = sa.Table(
    "live_user_day",
    SQLModel.metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    *(sa.Column(name, sa.Integer(), nullable=False) for name in USER_COUNTERS),
    sa.Column("xp_gained", sa.BigInteger(), nullable=False),
    # the user's xpTotal before the day (previous snapshot), for live averages
    sa.Column("xp_base", sa.BigInteger(), nullable=False),
    # the latest record: time, log (events 2 > interactions 1 > sessions 0), seq (lowest wins a tie)
    sa.Column("latest_at", _TZ, nullable=False),
    sa.Column("latest_source", sa.Integer(), nullable=False),
    sa.Column("latest_seq", sa.BigInteger(), nullable=False),
    *(sa.Column(name, sa.String(64)) for name in VERSIONS),
    *(sa.Column(name, sa.String(128), nullable=False) for name in SCOPE),
    sa.Index("ix_live_user_day_path", "day", *SCOPE),
)

LIVE_USER_BADGE = sa.Table(
    "live_user_badge",
    SQLModel.metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("badge", sa.String(256), primary_key=True),
)

LIVE_PATH_DAY = sa.Table(
    "live_path_day",
    SQLModel.metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    *(sa.Column(name, sa.String(128), primary_key=True) for name in SCOPE),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in PATH_COUNTERS),
    sa.Column("latest_at", _TZ, nullable=False),
    sa.Column("latest_user", sa.String(128), nullable=False),
    *(sa.Column(name, sa.String(64)) for name in VERSIONS),
)
