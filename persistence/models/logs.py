"""The append-only raw logs of data-layer §3.1-3.3.

Every row keeps the sender's version and scope (P-01, P-02), the server's
receive time and sending principal, and a hash of the record's canonical JSON
so that a re-send can be told apart from a conflicting one. The database
refuses UPDATE and DELETE on these tables (see migration 0002).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# INTEGER PRIMARY KEY is SQLite's rowid; BIGINT identity elsewhere.
SEQ_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tz() -> Any:
    return sa.DateTime(timezone=True)


class EventLogRow(SQLModel, table=True):
    __tablename__ = "event_log"
    __table_args__ = (
        sa.Index("ix_event_log_day_user", "day", "user_id"),
        sa.Index("ix_event_log_user_seq", "user_id", "seq"),
    )

    seq: int | None = Field(default=None, sa_column=sa.Column(SEQ_TYPE, primary_key=True, autoincrement=True))
    event_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    ts: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    day: date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    user_id: str = Field(max_length=128)
    event_type: str = Field(max_length=64)
    module_id: str | None = Field(default=None, max_length=128)
    quiz_id: str | None = Field(default=None, max_length=128)
    scenario_id: str | None = Field(default=None, max_length=128)
    turn_index: int | None = None
    action: str | None = Field(default=None, max_length=256)
    module_version: str | None = Field(default=None, max_length=64)
    scenario_version: str | None = Field(default=None, max_length=64)
    prompt_version: str | None = Field(default=None, max_length=64)
    region_id: str = Field(max_length=128)
    country_id: str = Field(max_length=128)
    branch_id: str = Field(max_length=128)
    team_id: str = Field(max_length=128)
    received_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    sent_by: str = Field(max_length=128)
    content_hash: str = Field(max_length=64)
    # PostgreSQL fills it with the inserting transaction's id (migration 0009); SQLite leaves it NULL.
    txid: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger(), sa.FetchedValue(), nullable=True, index=True)
    )


class InteractionLogRow(SQLModel, table=True):
    __tablename__ = "interaction_log"
    __table_args__ = (
        sa.Index("ix_interaction_log_day_user", "day", "user_id"),
        sa.Index("ix_interaction_log_user_seq", "user_id", "seq"),
        sa.Index("ix_interaction_log_session", "session_id"),
    )

    seq: int | None = Field(default=None, sa_column=sa.Column(SEQ_TYPE, primary_key=True, autoincrement=True))
    interaction_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    session_id: str = Field(max_length=64)
    ts: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    day: date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    user_id: str = Field(max_length=128)
    engine: str = Field(max_length=16)
    input: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    output: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    difficulty_level: float | None = None
    persona_id: str | None = Field(default=None, max_length=128)
    trait_activation: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    upsell_triggered: bool
    module_version: str | None = Field(default=None, max_length=64)
    scenario_version: str | None = Field(default=None, max_length=64)
    prompt_version: str | None = Field(default=None, max_length=64)
    region_id: str = Field(max_length=128)
    country_id: str = Field(max_length=128)
    branch_id: str = Field(max_length=128)
    team_id: str = Field(max_length=128)
    received_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    sent_by: str = Field(max_length=128)
    content_hash: str = Field(max_length=64)
    # PostgreSQL fills it with the inserting transaction's id (migration 0009); SQLite leaves it NULL.
    txid: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger(), sa.FetchedValue(), nullable=True, index=True)
    )


class SessionLogRow(SQLModel, table=True):
    __tablename__ = "session_log"
    __table_args__ = (
        sa.Index("ix_session_log_day_user", "day", "user_id"),
        sa.Index("ix_session_log_user_seq", "user_id", "seq"),
    )

    seq: int | None = Field(default=None, sa_column=sa.Column(SEQ_TYPE, primary_key=True, autoincrement=True))
    session_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    user_id: str = Field(max_length=128)
    engine: str = Field(max_length=16)
    start_time: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    end_time: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    # The UTC day of end_time: a session counts on the day it finished.
    day: date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    duration_sec: float
    outcome: str | None = Field(default=None, max_length=16)
    turn_count: int
    correct_answers: int | None = None
    upsell_attempts: int | None = None
    upsell_success: bool | None = None
    module_version: str | None = Field(default=None, max_length=64)
    scenario_version: str | None = Field(default=None, max_length=64)
    prompt_version: str | None = Field(default=None, max_length=64)
    region_id: str = Field(max_length=128)
    country_id: str = Field(max_length=128)
    branch_id: str = Field(max_length=128)
    team_id: str = Field(max_length=128)
    received_at: datetime = Field(sa_column=sa.Column(_tz(), nullable=False))
    sent_by: str = Field(max_length=128)
    content_hash: str = Field(max_length=64)
    # PostgreSQL fills it with the inserting transaction's id (migration 0009); SQLite leaves it NULL.
    txid: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger(), sa.FetchedValue(), nullable=True, index=True)
    )


RAW_LOG_TABLES = {
    "event_log": "event_id",
    "interaction_log": "interaction_id",
    "session_log": "session_id",
}
