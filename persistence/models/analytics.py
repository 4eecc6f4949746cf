"""Derived analytics tables of data-layer §3.4-3.5: daily user snapshots and scope aggregates.

Unlike the raw logs these are not append-only: they are rebuilt from their
sources (snapshots from one day of raw logs, aggregates from the snapshots
only, P-05), and a rebuild replaces a whole day. ``snapshot_build`` records
which days were built, so "not built yet" and "built, nobody active" differ.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _tz() -> Any:
    return sa.DateTime(timezone=True)


class SnapshotBuildRow(SQLModel, table=True):
    """One row per built day: when, by whom, with which pass threshold."""

    __tablename__ = "snapshot_build"

    day: date = Field(sa_column=sa.Column(sa.Date(), primary_key=True))
    built_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    built_by: str = Field(max_length=128)
    snapshots: int
    rebuilds: int
    quiz_pass_threshold: float


class SnapshotDailyUserRow(SQLModel, table=True):
    """§3.4: one row per user and UTC day with activity in any raw log that day.

    Counters are of that day; ``xp_total`` and ``badges_owned`` are cumulative
    (the user's previous snapshot plus this day). Versions and scope are those
    of the user's latest record that day (``latest_at``).
    """

    __tablename__ = "snapshot_daily_user"
    # The primary key is the spec's uniqueness rule (userId, date); the second
    # index finds a user's previous snapshot without reading the history.
    __table_args__ = (sa.Index("ix_snapshot_daily_user_user_day", "user_id", "day"),)

    day: date = Field(sa_column=sa.Column(sa.Date(), primary_key=True))
    user_id: str = Field(primary_key=True, max_length=128)
    logged_in: bool
    module_started: int
    module_completed: int
    quiz_completed: int
    quiz_passed: int
    saleslab_sessions: int
    upsell_attempts: int
    upsell_successes: int
    xp_gained: int = Field(sa_type=sa.BigInteger)
    xp_total: int = Field(sa_type=sa.BigInteger)
    badges_owned: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    latest_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    latest_module_version: str | None = Field(default=None, max_length=64)
    latest_scenario_version: str | None = Field(default=None, max_length=64)
    latest_prompt_version: str | None = Field(default=None, max_length=64)
    region_id: str = Field(max_length=128)
    country_id: str = Field(max_length=128)
    branch_id: str = Field(max_length=128)
    team_id: str = Field(max_length=128)


class AggregateColumns(SQLModel):
    """The structure all four aggregate tables share (§3.5 "identical structure").

    The summed counters are kept beside the rates so that every rate can be
    re-derived, and checked against the snapshots it came from (E_AGG_CONFLICT).
    Each table adds its unit's id and its parents' ids (agg_team: team, branch,
    country and region), so scope filters never need another table.
    """

    day: date = Field(primary_key=True)
    users: int
    active_users: int
    module_started: int
    module_completed: int
    quiz_completed: int
    quiz_passed: int
    saleslab_sessions: int
    upsell_attempts: int
    upsell_successes: int
    xp_gained: int = Field(sa_type=sa.BigInteger)
    xp_total_sum: int = Field(sa_type=sa.BigInteger)
    module_completion_rate: float | None = None
    quiz_pass_rate: float | None = None
    avg_upsell_success_rate: float | None = None
    avg_xp_total: float | None = None
    module_version: str | None = Field(default=None, max_length=64)
    scenario_version: str | None = Field(default=None, max_length=64)
    prompt_version: str | None = Field(default=None, max_length=64)
    # The time of the unit's latest record that day: its versions (and parents) are that record's.
    latest_at: datetime = Field(sa_type=sa.DateTime(timezone=True))  # type: ignore[call-overload]
    built_at: datetime = Field(sa_type=sa.DateTime(timezone=True))  # type: ignore[call-overload]


class AggRegionRow(AggregateColumns, table=True):
    __tablename__ = "agg_region"
    __table_args__ = (sa.Index("ix_agg_region_unit_day", "region_id", "day"),)

    region_id: str = Field(primary_key=True, max_length=128)


# A unit's row is keyed by its whole path (migration 0007): a team id used under two branches,
# or a team that moved during the day, is one row per branch, never one row both branches see.
class AggCountryRow(AggregateColumns, table=True):
    __tablename__ = "agg_country"
    __table_args__ = (sa.Index("ix_agg_country_unit_day", "country_id", "day"),)

    region_id: str = Field(primary_key=True, max_length=128)
    country_id: str = Field(primary_key=True, max_length=128)


class AggBranchRow(AggregateColumns, table=True):
    __tablename__ = "agg_branch"
    __table_args__ = (sa.Index("ix_agg_branch_unit_day", "branch_id", "day"),)

    region_id: str = Field(primary_key=True, max_length=128)
    country_id: str = Field(primary_key=True, max_length=128)
    branch_id: str = Field(primary_key=True, max_length=128)


class AggTeamRow(AggregateColumns, table=True):
    __tablename__ = "agg_team"
    __table_args__ = (sa.Index("ix_agg_team_unit_day", "team_id", "day"),)

    region_id: str = Field(primary_key=True, max_length=128)
    country_id: str = Field(primary_key=True, max_length=128)
    branch_id: str = Field(primary_key=True, max_length=128)
    team_id: str = Field(primary_key=True, max_length=128)


# What reads hand around: a row of any of the four tables.
AggregateRow = AggregateColumns

# Level name -> its aggregate table model, coarsest first.
AGGREGATE_MODELS: dict[str, type[AggregateRow]] = {
    "region": AggRegionRow,
    "country": AggCountryRow,
    "branch": AggBranchRow,
    "team": AggTeamRow,
}
