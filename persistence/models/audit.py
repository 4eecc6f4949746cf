"""The audit log (ops §7, §9): an HMAC hash chain of every change made through the API.

``audit_log`` is append-only in the database (migration 0004). ``seq``, ``prev_hash``
and ``entry_hash`` are unique, so two writers can never both extend the same entry:
the chain cannot fork. ``audit_head`` is a one-row table: the lock every append
takes, and the last (seq, hash) with its own HMAC, so that verification notices
entries removed from the end as long as the head itself was not rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

SEQ_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HEAD_ID = 1


class AuditEntryRow(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_user_seq", "user_id", "seq"),
        sa.Index("ix_audit_log_action_seq", "action", "seq"),
        sa.Index("ix_audit_log_at", "at"),
    )

    # Assigned by app.services.audit (head + 1), never by the database: gapless.
    seq: int = Field(sa_column=sa.Column(SEQ_TYPE, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    actor_sub: str = Field(max_length=256)
    actor_role: str = Field(max_length=16)
    action: str = Field(max_length=64)
    target: str = Field(max_length=256)
    before: Any = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    after: Any = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    request_id: str = Field(max_length=128)
    user_id: str = Field(max_length=256)
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    entry_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))


class AuditHeadRow(SQLModel, table=True):
    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),)

    id: int = Field(default=HEAD_ID, sa_column=sa.Column(sa.Integer(), primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=sa.Column(SEQ_TYPE, nullable=False))
    entry_hash: str = Field(max_length=64)
    # HMAC over (seq, entry_hash); empty for the genesis head written by the migration.
    mac: str = Field(max_length=64)
