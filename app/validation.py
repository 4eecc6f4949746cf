"""Shared input rules, so every path (GraphQL, REST, bulk) refuses the same things."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from app.errors import SchemaMismatch

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")


def is_id(value: object) -> bool:
    """Ids (users, scope nodes, request ids) are 1-128 characters of letters, digits and ``_ . : -``."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(field: str, value: str) -> str:
    if not is_id(value):
        raise SchemaMismatch(
            f"{field} must be 1-128 characters of letters, digits, '_', '.', ':' or '-'",
            field=field,
        )
    return value


def check_text(field: str, value: str, max_length: int = 256) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise SchemaMismatch(
            f"{field} must be non-empty text of at most {max_length} characters", field=field
        )
    return value


def check_page_size(first: int, maximum: int) -> int:
    if not 1 <= first <= maximum:
        raise SchemaMismatch(f"first must be between 1 and {maximum}", field="first")
    return first


def check_instant(field: str, value: datetime, *, zone_required: bool = False) -> datetime:
    """An instant argument, in UTC (without a zone: UTC, unless ``zone_required``). One whose UTC
    form falls outside the years 1-9999 (9999-12-31T23:00-14:00) is refused, not an overflow."""
    if value.tzinfo is None:
        if zone_required:
            raise SchemaMismatch(f"{field} needs a timezone offset such as Z or +09:00", field=field)
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise SchemaMismatch(f"{field} is out of range once in UTC", field=field) from exc
