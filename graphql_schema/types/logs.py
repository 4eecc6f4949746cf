"""Raw-log types (data-layer §3.1-3.3): the typed inputs, the batch answer and the read types.

The typed inputs declare every field nullable on purpose: presence is decided
by the shared validator (app.services.ingest.validation), so a record missing its scope
gets E_SCOPE_MISSING on its own index in both argument forms, instead of a
GraphQL error for the whole request. Field descriptions say what is required.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.pagination import Page
from app.scope import Scope
from app.services.ingest.storage import BatchOutcome, RecordStatus
from app.services.ingest.validation import RecordError
from app.times import as_utc
from graphql_schema.types.common import PageInfo, ScopeType
from graphql_schema.types.inputs import Record, record_input
from persistence.models import EventLogRow, InteractionLogRow, SessionLogRow

REQUIRED = "Required."
NULLABLE = "Optional; null when absent."

LogRecordStatus = strawberry.enum(
    RecordStatus,
    name="LogRecordStatus",
    description=(
        "ACCEPTED: stored by this call. DUPLICATE: already stored with the same content (a no-op). "
        "REJECTED: see errors. SKIPPED: valid but not stored, because another record failed an "
        "all-or-nothing batch; send it again."
    ),
)


# --- inputs -----------------------------------------------------------------------------------


@strawberry.input(description="All four scope ids of a log (P-02). Each is required: E_SCOPE_MISSING.")
class LogScopeInput:
    region_id: str | None = strawberry.UNSET
    country_id: str | None = strawberry.UNSET
    branch_id: str | None = strawberry.UNSET
    team_id: str | None = strawberry.UNSET


@strawberry.input(
    description="The versions a log was produced with (P-01). Each must be present, null where there "
    "is none: E_VERSION_MISSING."
)
class LogVersionInput:
    module_version: str | None = strawberry.UNSET
    scenario_version: str | None = strawberry.UNSET
    prompt_version: str | None = strawberry.UNSET


@strawberry.input(description="data-layer §3.1 context; every field optional.")
class EventLogContextInput:
    module_id: str | None = strawberry.UNSET
    quiz_id: str | None = strawberry.UNSET
    scenario_id: str | None = strawberry.UNSET
    turn_index: int | None = strawberry.UNSET
    action: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="For reward_claim: 'xp:<non-negative integer>' or 'badge:<badge id>'.",
    )


@record_input(description="One event_log record (data-layer §3.1).")
class EventLogInput:
    event_id: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} Idempotency key."
    )
    timestamp: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} ISO 8601 with a timezone offset."
    )
    user_id: str | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    event_type: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} One of the allowed event types (setting)."
    )
    context: EventLogContextInput | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)
    version: LogVersionInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    scope: LogScopeInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)


@strawberry.input(description="data-layer §3.2 metadata.")
class InteractionLogMetadataInput:
    difficulty_level: float | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)
    persona_id: str | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)
    trait_activation: list[str] | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    upsell_triggered: bool | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)


@record_input(description="One interaction_log record (data-layer §3.2).")
class InteractionLogInput:
    interaction_id: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} Idempotency key."
    )
    session_id: str | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    timestamp: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} ISO 8601 with a timezone offset."
    )
    user_id: str | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    engine: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} saleslab, module or quiz."
    )
    input: str | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    output: str | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)
    metadata: InteractionLogMetadataInput | None = strawberry.field(
        default=strawberry.UNSET, description=REQUIRED
    )
    version: LogVersionInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    scope: LogScopeInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)


@strawberry.input(description="data-layer §3.3 summary.")
class SessionLogSummaryInput:
    turn_count: int | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    correct_answers: int | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)
    upsell_attempts: int | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)
    upsell_success: bool | None = strawberry.field(default=strawberry.UNSET, description=NULLABLE)


@record_input(description="One session_log record (data-layer §3.3).")
class SessionLogInput:
    session_id: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} Idempotency key."
    )
    user_id: str | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    engine: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} saleslab, learning or quiz."
    )
    start_time: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} ISO 8601 with a timezone offset."
    )
    end_time: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{REQUIRED} ISO 8601 with a timezone offset."
    )
    duration_sec: float | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    outcome: str | None = strawberry.field(
        default=strawberry.UNSET, description=f"{NULLABLE} success, fail or partial."
    )
    summary: SessionLogSummaryInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    version: LogVersionInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)
    scope: LogScopeInput | None = strawberry.field(default=strawberry.UNSET, description=REQUIRED)


# What the batch mutations take as `records`: the schema shows the inputs, the resolver gets records.
EventLogRecords = Annotated[list[Record] | None, strawberry.argument(graphql_type=list[EventLogInput] | None)]
InteractionLogRecords = Annotated[
    list[Record] | None, strawberry.argument(graphql_type=list[InteractionLogInput] | None)
]
SessionLogRecords = Annotated[
    list[Record] | None, strawberry.argument(graphql_type=list[SessionLogInput] | None)
]


# --- the batch answer -------------------------------------------------------------------------


@strawberry.type(description="Why the record at `index` was rejected.")
class LogRecordError:
    index: int
    id: str | None = strawberry.field(description="The record's id, when it had a usable one.")
    code: str = strawberry.field(description="E_SCHEMA_MISMATCH, E_SCOPE_MISSING, E_VERSION_MISSING, ...")
    message: str
    field: str | None = strawberry.field(description="The offending field, e.g. scope.teamId.")

    @classmethod
    def from_row(cls, error: RecordError) -> LogRecordError:
        return cls(index=error.index, id=error.id, code=error.code, message=error.message, field=error.field)


@strawberry.type(
    description="The answer to a log batch. `statuses` is aligned with the input list; "
    "`errors` lists only the rejected records."
)
class LogBatchResult:
    accepted: int = strawberry.field(description="Records stored by this call.")
    duplicates: int = strawberry.field(description="Records already stored with the same content.")
    rejected: int
    skipped: int = strawberry.field(description="Valid records not stored because the batch was rejected.")
    statuses: list[LogRecordStatus]  # type: ignore[valid-type]
    errors: list[LogRecordError]

    @classmethod
    def from_row(cls, outcome: BatchOutcome) -> LogBatchResult:
        return cls(
            accepted=outcome.count(RecordStatus.ACCEPTED),
            duplicates=outcome.count(RecordStatus.DUPLICATE),
            rejected=outcome.count(RecordStatus.REJECTED),
            skipped=outcome.count(RecordStatus.SKIPPED),
            statuses=outcome.statuses,
            errors=[LogRecordError.from_row(error) for error in outcome.errors],
        )


# --- reads ------------------------------------------------------------------------------------


def _scope(row: EventLogRow | InteractionLogRow | SessionLogRow) -> ScopeType:
    return ScopeType.from_row(Scope(row.region_id, row.country_id, row.branch_id, row.team_id))


@strawberry.type
class LogVersion:
    module_version: str | None
    scenario_version: str | None
    prompt_version: str | None

    @classmethod
    def from_row(cls, row: EventLogRow | InteractionLogRow | SessionLogRow) -> LogVersion:
        return cls(
            module_version=row.module_version,
            scenario_version=row.scenario_version,
            prompt_version=row.prompt_version,
        )


@strawberry.type
class EventLogContext:
    module_id: str | None
    quiz_id: str | None
    scenario_id: str | None
    turn_index: int | None
    action: str | None


@strawberry.type(description="An event_log record as stored, with the server's receipt stamps.")
class EventLog:
    event_id: str
    timestamp: datetime
    user_id: str
    event_type: str
    context: EventLogContext
    version: LogVersion
    scope: ScopeType
    received_at: datetime
    sent_by: str

    @classmethod
    def from_row(cls, row: EventLogRow) -> EventLog:
        return cls(
            event_id=row.event_id,
            timestamp=as_utc(row.ts),
            user_id=row.user_id,
            event_type=row.event_type,
            context=EventLogContext(
                module_id=row.module_id,
                quiz_id=row.quiz_id,
                scenario_id=row.scenario_id,
                turn_index=row.turn_index,
                action=row.action,
            ),
            version=LogVersion.from_row(row),
            scope=_scope(row),
            received_at=as_utc(row.received_at),
            sent_by=row.sent_by,
        )


@strawberry.type
class InteractionLogMetadata:
    difficulty_level: float | None
    persona_id: str | None
    trait_activation: list[str]
    upsell_triggered: bool


@strawberry.type(description="An interaction_log record as stored, with the server's receipt stamps.")
class InteractionLog:
    interaction_id: str
    session_id: str
    timestamp: datetime
    user_id: str
    engine: str
    input: str
    output: str | None
    metadata: InteractionLogMetadata
    version: LogVersion
    scope: ScopeType
    received_at: datetime
    sent_by: str

    @classmethod
    def from_row(cls, row: InteractionLogRow) -> InteractionLog:
        return cls(
            interaction_id=row.interaction_id,
            session_id=row.session_id,
            timestamp=as_utc(row.ts),
            user_id=row.user_id,
            engine=row.engine,
            input=row.input,
            output=row.output,
            metadata=InteractionLogMetadata(
                difficulty_level=row.difficulty_level,
                persona_id=row.persona_id,
                trait_activation=list(row.trait_activation),
                upsell_triggered=row.upsell_triggered,
            ),
            version=LogVersion.from_row(row),
            scope=_scope(row),
            received_at=as_utc(row.received_at),
            sent_by=row.sent_by,
        )


@strawberry.type
class SessionLogSummary:
    turn_count: int
    correct_answers: int | None
    upsell_attempts: int | None
    upsell_success: bool | None


@strawberry.type(description="A session_log record as stored, with the server's receipt stamps.")
class SessionLog:
    session_id: str
    user_id: str
    engine: str
    start_time: datetime
    end_time: datetime
    duration_sec: float
    outcome: str | None
    summary: SessionLogSummary
    version: LogVersion
    scope: ScopeType
    received_at: datetime
    sent_by: str

    @classmethod
    def from_row(cls, row: SessionLogRow) -> SessionLog:
        return cls(
            session_id=row.session_id,
            user_id=row.user_id,
            engine=row.engine,
            start_time=as_utc(row.start_time),
            end_time=as_utc(row.end_time),
            duration_sec=row.duration_sec,
            outcome=row.outcome,
            summary=SessionLogSummary(
                turn_count=row.turn_count,
                correct_answers=row.correct_answers,
                upsell_attempts=row.upsell_attempts,
                upsell_success=row.upsell_success,
            ),
            version=LogVersion.from_row(row),
            scope=_scope(row),
            received_at=as_utc(row.received_at),
            sent_by=row.sent_by,
        )


@strawberry.type
class EventLogEdge:
    cursor: str
    node: EventLog


@strawberry.type
class EventLogConnection:
    edges: list[EventLogEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's events without their cursors.")
    def nodes(self) -> list[EventLog]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_row(cls, page: Page[EventLogRow]) -> EventLogConnection:
        return cls(
            edges=[
                EventLogEdge(cursor=cursor, node=EventLog.from_row(row))
                for row, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.from_row(page),
        )


@strawberry.type
class InteractionLogEdge:
    cursor: str
    node: InteractionLog


@strawberry.type
class InteractionLogConnection:
    edges: list[InteractionLogEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's interactions without their cursors.")
    def nodes(self) -> list[InteractionLog]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_row(cls, page: Page[InteractionLogRow]) -> InteractionLogConnection:
        return cls(
            edges=[
                InteractionLogEdge(cursor=cursor, node=InteractionLog.from_row(row))
                for row, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.from_row(page),
        )


@strawberry.type
class SessionLogEdge:
    cursor: str
    node: SessionLog


@strawberry.type
class SessionLogConnection:
    edges: list[SessionLogEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's sessions without their cursors.")
    def nodes(self) -> list[SessionLog]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_row(cls, page: Page[SessionLogRow]) -> SessionLogConnection:
        return cls(
            edges=[
                SessionLogEdge(cursor=cursor, node=SessionLog.from_row(row))
                for row, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.from_row(page),
        )
