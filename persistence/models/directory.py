"""The user directory: who exists and where they sit in the region/country/branch/team tree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_region", "region_id", "user_id"),
        Index("ix_users_country", "country_id", "user_id"),
        Index("ix_users_branch", "branch_id", "user_id"),
        Index("ix_users_team", "team_id", "user_id"),
    )

    user_id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=256)
    region_id: str = Field(max_length=128)
    country_id: str = Field(max_length=128)
    branch_id: str = Field(max_length=128)
    team_id: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
