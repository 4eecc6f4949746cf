"""The raw logs: bulk, idempotent writes by engines (data-layer §3.1-3.3) and operator reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app import policy
from app.services import logs
from app.services.ingest.storage import log_batch
from app.services.ingest.validation import LogKind
from graphql_schema.info import Info
from graphql_schema.permissions import allow
from graphql_schema.types.common import ScopeFilterInput
from graphql_schema.types.inputs import Record
from graphql_schema.types.logs import (
    EventLogConnection,
    EventLogRecords,
    InteractionLogConnection,
    InteractionLogRecords,
    LogBatchResult,
    SessionLogConnection,
    SessionLogRecords,
)

BATCH_RULES = (
    "Give the records as `records` (typed) or as `recordsJson` (the same list as a JSON value, "
    "sent in variables: much faster for large batches); exactly one. Both forms are validated "
    "identically. All-or-nothing unless `partial: true`. Idempotent on the record id: a re-send is "
    "DUPLICATE; the same id with other content is REJECTED (E_SCHEMA_MISMATCH) and changes nothing."
)
RECORDS_JSON = "The records as a JSON list, each shaped exactly as the typed input."
PARTIAL = "Store the valid records even when others are rejected."
RANGE_FROM = "Inclusive lower bound on the record's time (ISO 8601 with offset)."
RANGE_TO = "Exclusive upper bound on the record's time (ISO 8601 with offset)."


async def _log(
    info: Info, kind: LogKind, records: list[Record] | None, records_json: JSON | None, partial: bool
) -> LogBatchResult:
    ctx = info.context
    outcome = await log_batch(
        ctx.db,
        ctx.principal,
        kind,
        records=records,
        records_json=records_json,
        partial=partial,
        settings=ctx.settings,
    )
    return LogBatchResult.from_row(outcome)


@strawberry.type
class LogsMutation:
    @strawberry.mutation(
        extensions=[allow(policy.LOG_WRITERS)],
        description=f"Append event_log records (data-layer §3.1). {BATCH_RULES}",
    )
    async def log_events(
        self,
        info: Info,
        records: EventLogRecords = None,
        records_json: Annotated[JSON | None, strawberry.argument(description=RECORDS_JSON)] = None,
        partial: Annotated[bool, strawberry.argument(description=PARTIAL)] = False,
    ) -> LogBatchResult:
        return await _log(info, LogKind.EVENT, records, records_json, partial)

    @strawberry.mutation(
        extensions=[allow(policy.LOG_WRITERS)],
        description=f"Append interaction_log records (data-layer §3.2). {BATCH_RULES}",
    )
    async def log_interactions(
        self,
        info: Info,
        records: InteractionLogRecords = None,
        records_json: Annotated[JSON | None, strawberry.argument(description=RECORDS_JSON)] = None,
        partial: Annotated[bool, strawberry.argument(description=PARTIAL)] = False,
    ) -> LogBatchResult:
        return await _log(info, LogKind.INTERACTION, records, records_json, partial)

    @strawberry.mutation(
        extensions=[allow(policy.LOG_WRITERS)],
        description=f"Append session_log records (data-layer §3.3). {BATCH_RULES}",
    )
    async def log_sessions(
        self,
        info: Info,
        records: SessionLogRecords = None,
        records_json: Annotated[JSON | None, strawberry.argument(description=RECORDS_JSON)] = None,
        partial: Annotated[bool, strawberry.argument(description=PARTIAL)] = False,
    ) -> LogBatchResult:
        return await _log(info, LogKind.SESSION, records, records_json, partial)


@strawberry.type
class LogsQuery:
    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="event_log records in your scope, oldest first. "
        "A filter outside your scope is FORBIDDEN.",
    )
    async def events(
        self,
        info: Info,
        user_id: str | None = None,
        event_type: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from", description=RANGE_FROM)] = None,
        to: Annotated[datetime | None, strawberry.argument(description=RANGE_TO)] = None,
        scope: ScopeFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> EventLogConnection:
        ctx = info.context
        filter_ = logs.LogFilter(
            user_id=user_id,
            kind=event_type,
            since=from_,
            until=to,
            scope=scope.to_value() if scope else None,
        )
        async with ctx.db.session() as session:
            page = await logs.list_events(
                session, ctx.principal, filter_, first, after, ctx.settings.max_page_size
            )
        return EventLogConnection.from_row(page)

    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="interaction_log records in your scope, oldest first. "
        "A filter outside your scope is FORBIDDEN.",
    )
    async def interactions(
        self,
        info: Info,
        user_id: str | None = None,
        engine: str | None = None,
        session_id: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from", description=RANGE_FROM)] = None,
        to: Annotated[datetime | None, strawberry.argument(description=RANGE_TO)] = None,
        scope: ScopeFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> InteractionLogConnection:
        ctx = info.context
        filter_ = logs.LogFilter(
            user_id=user_id,
            kind=engine,
            session_id=session_id,
            since=from_,
            until=to,
            scope=scope.to_value() if scope else None,
        )
        async with ctx.db.session() as session:
            page = await logs.list_interactions(
                session, ctx.principal, filter_, first, after, ctx.settings.max_page_size
            )
        return InteractionLogConnection.from_row(page)

    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="session_log records in your scope, oldest first; the time range applies to endTime. "
        "A filter outside your scope is FORBIDDEN.",
    )
    async def sessions(
        self,
        info: Info,
        user_id: str | None = None,
        engine: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from", description=RANGE_FROM)] = None,
        to: Annotated[datetime | None, strawberry.argument(description=RANGE_TO)] = None,
        scope: ScopeFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> SessionLogConnection:
        ctx = info.context
        filter_ = logs.LogFilter(
            user_id=user_id, kind=engine, since=from_, until=to, scope=scope.to_value() if scope else None
        )
        async with ctx.db.session() as session:
            page = await logs.list_sessions(
                session, ctx.principal, filter_, first, after, ctx.settings.max_page_size
            )
        return SessionLogConnection.from_row(page)
