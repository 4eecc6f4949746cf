"""Core handles on the tables analytics reads and writes, and shared SQL fragments."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

import persistence.models  # noqa: F401 - registers every table on the metadata
from app.services.analytics.rules import Counters, Level

_TABLES = SQLModel.metadata.tables
EVENTS: sa.Table = _TABLES["event_log"]
INTERACTIONS: sa.Table = _TABLES["interaction_log"]
SESSIONS: sa.Table = _TABLES["session_log"]
SNAPSHOTS: sa.Table = _TABLES["snapshot_daily_user"]
BUILDS: sa.Table = _TABLES["snapshot_build"]
USERS: sa.Table = _TABLES["users"]
AGGREGATES: dict[Level, sa.Table] = {level: _TABLES[f"agg_{level.value}"] for level in Level}

VERSION_COLUMNS = ("module_version", "scenario_version", "prompt_version")

# One build's scope paths (statements.units_select): a temporary table, made and dropped inside
# the build's transaction (PostgreSQL would also drop it at commit). Not part of the schema.
UNITS = sa.Table(
    "build_units",
    sa.MetaData(),
    *(sa.Column(level.column, sa.String(128), nullable=False) for level in Level),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in Counters.names()),
    sa.Column("latest_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("latest_user", sa.String(128), nullable=False),
    *(sa.Column(name, sa.String(64)) for name in VERSION_COLUMNS),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def count_if(condition: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))
