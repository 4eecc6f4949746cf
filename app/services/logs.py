"""Reading the raw logs (``events``, ``interactions``, ``sessions``): operators, in scope.

Rows carry the scope their sender gave them, so a list is narrowed by the
caller's bound on those columns. A filter the caller may not ask for is
FORBIDDEN, never an empty page: another node of the tree at the bound's level
(``app.scope.narrow``), a finer node outside it (the directory knows the tree),
or a user the caller cannot read (unknown users too, so nothing leaks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import SchemaMismatch
from app.pagination import Page, decode_cursor, encode_cursor
from app.scope import ScopeFilter, narrow
from app.services import directory
from app.validation import check_id, check_instant, check_page_size
from persistence.models import EventLogRow, InteractionLogRow, SessionLogRow

LogRow = TypeVar("LogRow", EventLogRow, InteractionLogRow, SessionLogRow)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What a raw-log list may be narrowed by; None means any.

    ``kind`` is the eventType of events and the engine of interactions and
    sessions. The time range is [since, until) on the record's timestamp
    (a session's endTime, the instant it counts on).
    """

    user_id: str | None = None
    kind: str | None = None
    session_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    scope: ScopeFilter | None = None


def _instant(name: str, value: datetime | None) -> datetime | None:
    return None if value is None else check_instant(name, value, zone_required=True)


async def _ensure_may_filter(session: AsyncSession, principal: Principal, filter_: LogFilter) -> ScopeFilter:
    effective = narrow(principal, filter_.scope)
    if filter_.scope is not None:
        for level, value in filter_.scope.pinned().items():
            check_id(f"scope.{level}Id", value)
        # The directory owns the organisation tree; its check is shared with `users`.
        await directory.ensure_filter_in_tree(session, principal, filter_.scope)
    if filter_.user_id is not None:
        check_id("userId", filter_.user_id)
        if not principal.is_admin:
            found = await directory.users_by_ids(session, [filter_.user_id])
            directory.check_can_read(principal, found.get(filter_.user_id))
    return effective


@dataclass(frozen=True, slots=True)
class _LogList(Generic[LogRow]):
    """Lists one raw-log table in the caller's scope, oldest first (cursor: seq). Called as a
    function: ``list_events(session, principal, filter_, first, after, max_page_size)``.

    ``kind_column`` is what ``LogFilter.kind`` matches; ``time_column`` is the instant the time
    range applies to."""

    model: type[LogRow]
    kind_column: str
    time_column: str

    async def __call__(
        self,
        session: AsyncSession,
        principal: Principal,
        filter_: LogFilter,
        first: int,
        after: str | None,
        max_page_size: int,
    ) -> Page[LogRow]:
        check_page_size(first, max_page_size)
        effective = await _ensure_may_filter(session, principal, filter_)
        table: Any = self.model
        since = _instant("from", filter_.since)
        until = _instant("to", filter_.until)
        where: list[ColumnElement[bool]] = [
            getattr(table, f"{level}_id") == value for level, value in effective.pinned().items()
        ]
        if filter_.user_id is not None:
            where.append(table.user_id == filter_.user_id)
        if filter_.kind is not None:
            where.append(getattr(table, self.kind_column) == filter_.kind)
        if filter_.session_id is not None:
            where.append(table.session_id == filter_.session_id)
        # The day bounds let the (day, user_id) index narrow the scan; the instants decide.
        if since is not None:
            where += [getattr(table, self.time_column) >= since, table.day >= since.date()]
        if until is not None:
            where += [getattr(table, self.time_column) < until, table.day <= until.date()]
        kind = self.model.__tablename__
        if after is not None:
            key = decode_cursor(str(kind), after)
            if not key.isdigit():
                raise SchemaMismatch("after is not a valid cursor", field="after")
            where.append(table.seq > int(key))
        query = select(self.model).where(*where).order_by(table.seq).limit(first + 1)
        rows = list((await session.scalars(query)).all())
        has_next = len(rows) > first
        rows = rows[:first]
        return Page(rows, [encode_cursor(str(kind), str(row.seq)) for row in rows], has_next)


list_events = _LogList(EventLogRow, "event_type", "ts")
"""event_log rows in the caller's scope, oldest first (cursor: seq)."""
list_interactions = _LogList(InteractionLogRow, "engine", "ts")
"""interaction_log rows in the caller's scope, oldest first (cursor: seq)."""
list_sessions = _LogList(SessionLogRow, "engine", "end_time")
"""session_log rows in the caller's scope, oldest first (cursor: seq; time: endTime)."""


__all__ = [
    "LogFilter",
    "list_events",
    "list_interactions",
    "list_sessions",
]
