"""The per-operation hook: enforces the ops §6 limits before a query or mutation runs, and
times it for diagnostics afterwards.

What each limit counts is in ``app.services.ops.enforcement``; this module only works out an
operation's shape (its type and root fields) from the GraphQL document and charges the
counters: this process's (``OperationGuard``) or the deployment's shared store
(``SharedOperationGuard``), as ``app.coordination`` decides from the settings.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from strawberry.extensions import SchemaExtension

from app import observability
from app.auth import Role
from app.errors import RateLimited
from app.services.ops.enforcement import FALLBACK_LIMITS
from app.services.ops.values import Limits
from graphql_schema.documents import ByDocument
from graphql_schema.errors import code_of, is_internal

if TYPE_CHECKING:
    from app.services.ops.state import OpsRuntime
    from graphql_schema.context import Context

SUBSCRIPTION = "subscription"


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name is not None and op.name.value == name), None)


def root_fields(operation: OperationDefinitionNode, document: DocumentNode) -> dict[str, str]:
    """The operation's root fields as response key -> field name, through fragments."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    fields: dict[str, str] = {}
    _collect(operation.selection_set, fragments, fields, set())
    return fields


def _collect(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    fields: dict[str, str],
    visited: set[str],
) -> None:
    """Each fragment is walked once: a second spread adds no root field, and walking it again
    would make fragments that spread each other twice cost exponential time."""
    # a module function, not a closure: a recursive closure is a reference cycle per call
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value != "__typename":
                fields[(selection.alias or selection.name).value] = selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            _collect(selection.selection_set, fragments, fields, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in visited:
                visited.add(name)
                _collect(fragments[name].selection_set, fragments, fields, visited)


@dataclass(frozen=True)
class OperationShape:
    """What an operation asks for: its type and root fields (response key -> field name).
    One per document and operation name, shared by every request that sends them."""

    kind: str
    fields: dict[str, str]
    name: str | None = None

    @cached_property
    def root_fields(self) -> str:
        """Its root fields' names, sorted and comma-separated (the metrics' label)."""
        return ",".join(sorted(set(self.fields.values())))

    @property
    def cost(self) -> int:
        """What it costs against aiCallsPerMinute: one per root field, aliases each."""
        return len(self.fields)

    @cached_property
    def endpoint(self) -> str:
        """Its name in diagnostics, e.g. ``query health,limits`` (bounded by the schema)."""
        return f"{self.kind} {self.root_fields}"


def _shape(document: DocumentNode, operation_name: str | None) -> OperationShape | None:
    operation = _operation(document, operation_name)
    if operation is None:
        return None
    name = operation.name.value if operation.name is not None else None
    return OperationShape(operation.operation.value, root_fields(operation, document), name)


_SHAPES: ByDocument[OperationShape | None] = ByDocument()


def shape_of(document: DocumentNode, operation_name: str | None) -> OperationShape | None:
    """Worked out once per document and operation name."""
    return _SHAPES.get(document, operation_name, lambda: _shape(document, operation_name))


def _is_timeout(error: GraphQLError) -> bool:
    original: BaseException | None = error.original_error
    while original is not None:
        if (
            isinstance(original, TimeoutError | PoolTimeout)
            or type(original).__name__ == "QueryCanceledError"
        ):
            return True
        original = original.__cause__ or (
            original.original_error if isinstance(original, GraphQLError) else None
        )
    return False


class OperationGuard(SchemaExtension):
    """Per query or mutation: enforce the engine limits before it runs, time it after.

    Synchronous hooks on purpose (about half the cost of async ones per operation): the limits
    come from the worker's cached settings, which the body-size middleware has just refreshed.
    """

    _shape: OperationShape | None = None

    def _operation_shape(self) -> OperationShape | None:
        if self._shape is None and (document := self.execution_context.graphql_document) is not None:
            self._shape = shape_of(document, self.execution_context.operation_name)
        return self._shape

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        context = self.execution_context
        shape = self._operation_shape()
        if shape is not None and shape.kind == SUBSCRIPTION:
            return
        result = context.result
        errors = (result.errors if result is not None else None) or context.pre_execution_errors
        codes = [code_of(error) for error in errors] if errors else []
        self._observe(shape, elapsed, codes)
        ops: OpsRuntime | None = getattr(context.context, "ops", None)
        if ops is None:
            return
        endpoint = shape.endpoint if shape is not None and shape.fields else "(invalid)"
        metrics = ops.metrics
        if not errors:
            metrics.record(endpoint, elapsed * 1000, server_error=False, client_error=False, timed_out=False)
            return
        metrics.record(
            endpoint,
            elapsed * 1000,
            server_error=any(is_internal(error) for error in errors),
            client_error=True,
            timed_out=any(_is_timeout(error) for error in errors),
        )

    def _observe(self, shape: OperationShape | None, elapsed: float, codes: list[str]) -> None:
        """Prometheus metrics, and the request log line's operation, caller and codes."""
        if shape is not None and shape.fields:
            kind, name, fields = shape.kind, shape.name, shape.root_fields
        else:
            kind, name, fields = "(invalid)", None, "(invalid)"
        observability.operation_done(kind, name, fields, elapsed, codes)
        ctx = self.execution_context.context
        request = getattr(ctx, "request", None)
        record = observability.record_of(request.scope) if request is not None else None
        if record is None:
            return
        caller = getattr(ctx, "caller", None)
        if caller is not None:
            record.sub, record.role = caller.sub, caller.role.value
        record.operation_type, record.operation_name, record.root_fields = kind, name, fields
        record.codes = codes

    def _metered(self) -> tuple[str, OperationShape, Limits] | None:
        """The engine principal, the operation and the limits in force, when it is metered."""
        ctx: Context = self.execution_context.context
        principal = getattr(ctx, "caller", None)
        if principal is None or principal.role is not Role.ENGINE:
            return None
        shape = self._operation_shape()
        if shape is None or shape.kind == SUBSCRIPTION:
            return None
        snapshot = ctx.ops.peek()
        return principal.sub, shape, snapshot.limits if snapshot is not None else FALLBACK_LIMITS

    def _refuse(self, refused: RateLimited) -> None:
        observability.rate_limited()
        # A preset result makes Strawberry skip execution: nothing of the operation runs.
        self.execution_context.result = GraphQLExecutionResult(
            data=None, errors=[GraphQLError(refused.message, original_error=refused)]
        )

    def on_execute(self) -> Iterator[None]:
        metered = self._metered()
        if metered is None:
            yield
            return
        key, shape, limits = metered
        admission = self.execution_context.context.ops.coordination.memory
        try:
            lease = admission.admit(
                key, shape.cost, limits.ai_calls_per_minute, limits.max_concurrent_sessions
            )
        except RateLimited as refused:
            self._refuse(refused)
            yield
            return
        try:
            yield
        finally:
            admission.release(lease)


class SharedOperationGuard(OperationGuard):
    """The same, with the counters in the deployment's shared store (``app.coordination``):
    one awaited check before the operation, one awaited release after it."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        metered = self._metered()
        if metered is None:
            yield
            return
        key, shape, limits = metered
        coordination = self.execution_context.context.ops.coordination
        try:
            lease = await coordination.admit(
                key, shape.cost, limits.ai_calls_per_minute, limits.max_concurrent_sessions
            )
        except RateLimited as refused:
            self._refuse(refused)
            yield
            return
        try:
            yield
        finally:
            await coordination.release(lease)
