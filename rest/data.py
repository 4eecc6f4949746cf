"""The data layer over REST. data-layer-v1.1 names no paths; these are this project's:

- ``POST /operator/data/{events|interactions|sessions}``: a bulk, idempotent batch
  (``{"records": [...], "partial": false}``), as ``logEvents`` / ``logInteractions`` / ``logSessions``;
- ``POST /operator/data/snapshots/{date}/build?rebuild=``: ``buildSnapshots`` (admin);
- ``GET /operator/data/kpis?date=&regionId=&countryId=&branchId=&teamId=``: ``kpis``;
- ``GET /operator/data/aggregates?level=&from=&to=&scopeId=``: ``aggregates``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from app import policy
from app.errors import SchemaMismatch
from app.scope import ScopeFilter
from app.services import analytics
from app.services.analytics import Level
from app.services.ingest.storage import RecordStatus, log_batch
from app.services.ingest.validation import LogKind
from rest.calls import Call, caller
from rest.errors import errors
from rest.models import LogBatchBody, LogBatchOut, RecordErrorOut, SnapshotBuildOut, epoch

router = APIRouter(prefix="/operator/data", tags=["data"])

LogWriter = Annotated[Call, Depends(caller(policy.LOG_WRITERS))]
Operator = Annotated[Call, Depends(caller(policy.OPERATORS))]
Admin = Annotated[Call, Depends(caller(policy.ADMIN))]
Day = Annotated[dt.date, Query(description="A UTC day, YYYY-MM-DD.")]


def plain(value: Any) -> Any:
    """A service value as JSON: camelCase keys, days as YYYY-MM-DD, instants as epoch seconds."""
    if isinstance(value, BaseModel):
        return {to_camel(k): plain(v) for k, v in value.model_dump().items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {to_camel(f.name): plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k.value if isinstance(k, Enum) else k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return epoch(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


async def _batch(call: Call, kind: LogKind, body: LogBatchBody) -> LogBatchOut:
    outcome = await log_batch(
        call.db,
        call.principal,
        kind,
        records=None,
        records_json=body.records,
        partial=body.partial,
        settings=call.settings,
    )
    result = LogBatchOut(
        accepted=outcome.count(RecordStatus.ACCEPTED),
        duplicates=outcome.count(RecordStatus.DUPLICATE),
        rejected=outcome.count(RecordStatus.REJECTED),
        skipped=outcome.count(RecordStatus.SKIPPED),
        statuses=[str(getattr(status, "value", status)) for status in outcome.statuses],
        errors=[
            RecordErrorOut(index=e.index, id=e.id, code=e.code, message=e.message, field=e.field)
            for e in outcome.errors
        ],
    )
    if result.rejected and not body.partial:
        first = outcome.errors[0]
        error = SchemaMismatch(
            f"record {first.index}: {first.message} (nothing stored)",
            result=result.model_dump(by_alias=True),
        )
        error.code = first.code  # type: ignore[misc]  # the first record's own contract code
        raise error
    return result


BATCH = (
    "All-or-nothing unless partial: a rejected batch is 400 with the first record's code and "
    "details.result; idempotent on the record id (a re-send is DUPLICATE)."
)


@router.post("/events", responses=errors(), summary="data-layer §3.1: event_log records", description=BATCH)
async def log_events(body: LogBatchBody, call: LogWriter) -> LogBatchOut:
    return await _batch(call, LogKind.EVENT, body)


@router.post(
    "/interactions", responses=errors(), summary="data-layer §3.2: interaction_log records", description=BATCH
)
async def log_interactions(body: LogBatchBody, call: LogWriter) -> LogBatchOut:
    return await _batch(call, LogKind.INTERACTION, body)


@router.post(
    "/sessions", responses=errors(), summary="data-layer §3.3: session_log records", description=BATCH
)
async def log_sessions(body: LogBatchBody, call: LogWriter) -> LogBatchOut:
    return await _batch(call, LogKind.SESSION, body)


@router.post(
    "/snapshots/{date}/build",
    responses=errors(409),
    summary="data-layer §3.4-3.5: build a UTC day's snapshots and aggregates (admin)",
)
async def build_snapshots(
    date: dt.date,
    call: Admin,
    rebuild: Annotated[bool, Query(description="Replace a built day (audited).")] = False,
) -> SnapshotBuildOut:
    result = await analytics.build_snapshots(
        call.db,
        call.ops.audit,
        call.principal,
        date,
        rebuild=rebuild,
        quiz_pass_threshold=call.settings.quiz_pass_threshold,
        request_id=call.request_id,
    )
    return SnapshotBuildOut(
        date=result.day.isoformat(),
        rebuilt=result.rebuilt,
        snapshots=result.snapshots,
        regions=result.aggregates[Level.REGION],
        countries=result.aggregates[Level.COUNTRY],
        branches=result.aggregates[Level.BRANCH],
        teams=result.aggregates[Level.TEAM],
        built_at=int(result.built_at.timestamp()),
        built_by=result.built_by,
        later_days_to_rebuild=[day.isoformat() for day in result.later_days],
    )


@router.get("/kpis", responses=errors(404, 409), summary="data-layer §4.1-4.4 for a unit and day")
async def kpis(
    date: Day,
    call: Operator,
    region_id: Annotated[str | None, Query(alias="regionId")] = None,
    country_id: Annotated[str | None, Query(alias="countryId")] = None,
    branch_id: Annotated[str | None, Query(alias="branchId")] = None,
    team_id: Annotated[str | None, Query(alias="teamId")] = None,
) -> dict[str, Any]:
    scope = ScopeFilter(region_id, country_id, branch_id, team_id)
    requested = None if scope == ScopeFilter(None, None, None, None) else scope
    async with call.db.session() as session:
        report = await analytics.kpis(session, call.principal, date, requested)
    out: dict[str, Any] = plain(report)
    return out


@router.get("/aggregates", responses=errors(404, 409), summary="data-layer §3.5 rows of a level")
async def aggregates(
    level: Level,
    from_: Annotated[dt.date, Query(alias="from", description="First UTC day, inclusive.")],
    to: Annotated[dt.date, Query(description="Last UTC day, inclusive.")],
    call: Operator,
    scope_id: Annotated[str | None, Query(alias="scopeId")] = None,
) -> list[dict[str, Any]]:
    async with call.db.session() as session:
        report = await analytics.aggregates(
            session,
            call.principal,
            level,
            from_,
            to,
            scope_id,
            max_days=call.settings.aggregates_max_days,
            max_rows=call.settings.aggregates_max_rows,
        )
    # a day not built yet is read from the live counters: provisional, as in GraphQL
    return [plain(row) | {"final": row.day not in report.provisional} for row in report.rows]
