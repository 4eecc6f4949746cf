"""Composes the per-domain root types and configures protection and caching."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError

from app import observability
from app.errors import Unauthenticated
from app.settings import Settings
from graphql_schema.context import Context
from graphql_schema.documents import Documents
from graphql_schema.errors import log_internal_errors, with_codes
from graphql_schema.execution import FastExecutionContext
from graphql_schema.guard import OperationGuard, SharedOperationGuard
from graphql_schema.hooks import LeanExtensionsRunner
from resolvers.analytics import AnalyticsMutation, AnalyticsQuery, AnalyticsSubscription
from resolvers.audit import AuditQuery
from resolvers.directory import DirectoryMutation, DirectoryQuery
from resolvers.logs import LogsMutation, LogsQuery
from resolvers.ops import OpsMutation, OpsQuery
from resolvers.upm import UpmMutation, UpmQuery, UpmSubscription

SDL_PATH = Path(__file__).with_name("schema.graphql")

Query = merge_types("Query", (DirectoryQuery, LogsQuery, AuditQuery, AnalyticsQuery, UpmQuery, OpsQuery))
Mutation = merge_types(
    "Mutation", (DirectoryMutation, LogsMutation, AnalyticsMutation, UpmMutation, OpsMutation)
)
Subscription = merge_types("Subscription", (UpmSubscription, AnalyticsSubscription))


def _unauthenticated(context: object) -> ExecutionResult | None:
    """Every operation needs a valid token, introspection and ``__typename`` included: checked
    before the document is even parsed, so an anonymous caller learns nothing of the schema."""
    if not isinstance(context, Context) or context.caller is not None:
        return None
    try:
        context.principal  # noqa: B018 (raises the reason: missing, expired, invalid)
    except Unauthenticated as refused:
        error = GraphQLError(refused.message, extensions=refused.extensions())
        _observe_refusal(context, refused.code)
        return ExecutionResult(data=None, errors=[error])
    return None


def _observe_refusal(context: Context, code: str) -> None:
    """A request refused before parsing still shows in the metrics and its log line (the
    operation is unknown: the document was never read)."""
    observability.operation_done(UNREAD, None, UNREAD, 0.0, [code])
    request = getattr(context, "request", None)
    record = observability.record_of(request.scope) if request is not None else None
    if record is not None:
        record.codes = [code]


UNREAD = "(unread)"


class Schema(strawberry.Schema):
    """Every result, over HTTP or WebSocket, carries the contract's codes (graphql_schema.errors)."""

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        refused = _unauthenticated(kwargs.get("context_value"))
        if refused is not None:
            return refused
        result = await super().execute(*args, **kwargs)
        if result.errors:
            result.errors = with_codes(result.errors)
        return result

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        refused = _unauthenticated(kwargs.get("context_value"))
        if refused is not None:
            return _refused_stream(refused)
        result = await super().stream(*args, **kwargs)
        if isinstance(result, ExecutionResult):
            if result.errors:
                result.errors = with_codes(result.errors)
            return result
        return _with_codes_each(result)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Client mistakes are answered, not logged as server errors; our bugs are, with the
        request's id."""
        context = execution_context.context if execution_context is not None else None
        log_internal_errors(errors, getattr(context, "request_id", None))


async def _refused_stream(refused: ExecutionResult) -> AsyncGenerator[PreExecutionError, None]:
    """What a WebSocket transport expects of ``stream`` when nothing ran: one pre-execution error."""
    yield PreExecutionError(data=None, errors=refused.errors)


async def _with_codes_each(results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    async for result in results:
        if isinstance(result, ExecutionResult) and result.errors:
            result.errors = with_codes(result.errors)
        yield result


def build_schema(settings: Settings) -> strawberry.Schema:
    # Factories, not instances: Strawberry then makes fresh extensions per request.
    extensions: list[Callable[[], SchemaExtension]] = [
        # first: times everything after it; enforces the ops limits (graphql_schema.guard)
        OperationGuard if settings.coordination_backend == "memory" else SharedOperationGuard,
        Documents(settings).extension,  # parse and validate once per document, limits included
    ]
    kwargs: dict[str, Any] = {
        "query": Query,
        "mutation": Mutation,
        "subscription": Subscription,
        "extensions": extensions,
        "config": StrawberryConfig(disable_field_suggestions=True),
        "execution_context_class": FastExecutionContext,
    }
    return Schema(**kwargs)


def export_sdl(settings: Settings | None = None) -> str:
    return build_schema(settings or Settings()).as_str() + "\n"
