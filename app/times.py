"""Instants as the service hands them out: a leaf module (standard library only), so every floor
can use it."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """The instant in UTC; one without a zone is UTC already: SQLite hands stored UTC back without one."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__ = ["as_utc"]
