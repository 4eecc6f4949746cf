"""Core handles on the tables analytics reads and writes, and shared SQL fragments."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

import persistence.models  # noqa: F401 - registers every table on the metadata
from app.services.analytics.rules import Level

_TABLES = SQLModel.metadata.tables
EVENTS: sa.Table = _TABLES["event_log"]
INTERACTIONS: sa.Table = _TABLES["interaction_log"]
SESSIONS: sa.Table = _TABLES["session_log"]
SNAPSHOTS: sa.Table = _TABLES["snapshot_daily_user"]
BUILDS: sa.Table = _TABLES["snapshot_build"]
USERS: sa.Table = _TABLES["users"]
AGGREGATES: dict[Level, sa.Table] = {level: _TABLES[f"agg_{level.value}"] for level in Level}

VERSION_COLUMNS = ("module_version", "scenario_version", "prompt_version")


def count_if(condition: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))
