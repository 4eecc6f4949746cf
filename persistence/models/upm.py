"""The User Performance Monitor's maintained state (upm §1, §6).

Each accepted log adds to these rows in the same transaction as the log itself
(atomic ``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``), so reading
a profile costs a few primary-key lookups whatever the length of the history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _tz() -> Any:
    return sa.DateTime(timezone=True)


class UpmProfileRow(SQLModel, table=True):
    __tablename__ = "upm_profile"

    user_id: str = Field(primary_key=True, max_length=128)
    scenario_sessions: int = 0
    scenario_turns: int = 0
    scenario_upsell_successes: int = 0
    scenario_objections: int = 0
    # behaviorScore aggregation state: a running mean (sum, count) and an EMA
    behavior_sum: float = 0.0
    behavior_count: int = 0
    behavior_ema: float | None = None
    quiz_count: int = 0
    quiz_accuracy_sum: float = 0.0
    learning_logs: int = 0
    learning_completed_logs: int = 0
    learning_minutes: float = 0.0
    missions_completed: int = 0
    missions_failed: int = 0
    updated_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))


class UpmTopicRow(SQLModel, table=True):
    """Quiz results per knowledge topic: strengths and weaknesses come from here."""

    __tablename__ = "upm_topic"

    user_id: str = Field(primary_key=True, max_length=128)
    topic: str = Field(primary_key=True, max_length=128)
    quizzes: int = 0
    correct: int = 0
    total: int = 0


class UpmModuleRow(SQLModel, table=True):
    """Learning logs per module: completed modules and repeats come from here."""

    __tablename__ = "upm_module"

    user_id: str = Field(primary_key=True, max_length=128)
    module_id: str = Field(primary_key=True, max_length=128)
    logs: int = 0
    completions: int = 0


class UpmMissionRow(SQLModel, table=True):
    """The latest result per mission: a failed mission stays active until it succeeds."""

    __tablename__ = "upm_mission"

    user_id: str = Field(primary_key=True, max_length=128)
    mission_id: str = Field(primary_key=True, max_length=128)
    successes: int = 0
    failures: int = 0
    last_success: bool


class UpmSkillRow(SQLModel, table=True):
    __tablename__ = "upm_skill"

    user_id: str = Field(primary_key=True, max_length=128)
    skill_id: str = Field(primary_key=True, max_length=64)
    mastery: float = 0.0
    updated_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))


class UpmLogRow(SQLModel, table=True):
    """Idempotency: the first answer to each client-chosen logId, returned on retries."""

    __tablename__ = "upm_log"

    log_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    payload_hash: str = Field(max_length=64)
    answer: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
