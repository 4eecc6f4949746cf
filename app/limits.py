"""Enforcement of the ops §6 limits, and the per-operation hook that also feeds diagnostics.

What each limit counts:

- ``aiCallsPerMinute`` — per engine principal (the token's ``sub``), the root fields of its
  GraphQL queries and mutations: ``{ a: modelConfig b: modelConfig }`` costs 2, so aliases and
  fragments cannot slip past (``__typename`` is free). A token bucket of that many fields,
  refilled evenly over 60 s. An operation is admitted whole or not at all: if its cost exceeds
  what is left, none of its fields run and it fails with ``RATE_LIMITED`` and
  ``retryAfterSeconds`` (when the bucket will hold enough). Partial admission would run some
  writes and, since a non-null root field's error nulls ``data``, hide their results.
- ``maxConcurrentSessions`` — per engine principal, the queries and mutations executing at the
  same moment; one more is refused with ``RATE_LIMITED`` (``retryAfterSeconds`` 1).
- ``fileUploadLimitMb`` — every HTTP request body, any caller (MiB, 1 MB = 1,048,576 bytes);
  ``TRAINER_MAX_BODY_BYTES`` stays the deployment's hard ceiling and the smaller one wins.
  Refused with 413 before the body is parsed.

Operators are not metered (their load is bounded by the request protections); subscriptions are
not operations in flight for these limits. A change through ``updateLimits`` applies to the next
request of the worker that made it and within ``TRAINER_OPS_REFRESH_SECONDS`` to every other.

Scope: the counters live in each worker process (no database round trip per operation), so with
N workers an engine spread across all of them can reach N times each limit; run one worker per
host, or divide the limits by the worker count, when the global figure matters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
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

from app.auth import Role
from app.errors import RateLimited
from app.services.ops.defaults import DEFAULT_LIMITS
from app.services.ops.values import Limits
from graphql_schema.documents import ByDocument
from graphql_schema.errors import is_internal

if TYPE_CHECKING:
    from app.context import Context
    from app.services.ops.state import OpsRuntime

log = logging.getLogger("trainer_console.limits")

SECONDS_PER_MINUTE = 60.0
MAX_TRACKED_PRINCIPALS = 10_000
SUBSCRIPTION = "subscription"
# Only until a worker has read its settings once (a WebSocket operation before any HTTP request).
FALLBACK_LIMITS = Limits.from_json(DEFAULT_LIMITS)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    capacity: int
    updated: float


class RateLimiter:
    """Token buckets per principal: ``capacity`` root fields, refilled at capacity per minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, cost: int, per_minute: int) -> None:
        """Charge ``cost`` or raise RateLimited without charging anything."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_PRINCIPALS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(per_minute), per_minute, now)
        elif bucket.capacity != per_minute:
            # A new limit applies now: a raise grants the difference, a cut takes it away.
            bucket.tokens = max(0.0, bucket.tokens + per_minute - bucket.capacity)
            bucket.capacity = per_minute
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * per_minute / 60)
        bucket.updated = now
        if cost > per_minute:
            raise RateLimited(
                f"this operation has {cost} root fields and aiCallsPerMinute is {per_minute}: "
                "send fewer fields per operation",
                retry_after_seconds=int(SECONDS_PER_MINUTE),
            )
        if cost > bucket.tokens:
            wait = (cost - bucket.tokens) * SECONDS_PER_MINUTE / per_minute
            raise RateLimited(
                f"aiCallsPerMinute of {per_minute} reached: this operation has {cost} root fields",
                retry_after_seconds=max(1, math.ceil(wait)),
            )
        bucket.tokens -= cost

    def _forget_idle(self, now: float) -> None:
        """Full buckets carry no information; drop them to bound memory."""
        for key in [k for k, b in self._buckets.items() if now - b.updated >= SECONDS_PER_MINUTE]:
            del self._buckets[key]


class ConcurrencyGate:
    """Operations in flight per principal."""

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}

    def check(self, key: str, limit: int) -> None:
        if self._in_flight.get(key, 0) >= limit:
            raise RateLimited(
                f"maxConcurrentSessions of {limit} reached: wait for an operation to finish",
                retry_after_seconds=1,
            )

    def enter(self, key: str) -> None:
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def leave(self, key: str) -> None:
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)


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

    @property
    def cost(self) -> int:
        """What it costs against aiCallsPerMinute: one per root field, aliases each."""
        return len(self.fields)

    @cached_property
    def endpoint(self) -> str:
        """Its name in diagnostics, e.g. ``query health,limits`` (bounded by the schema)."""
        return f"{self.kind} {','.join(sorted(set(self.fields.values())))}"


def _shape(document: DocumentNode, operation_name: str | None) -> OperationShape | None:
    operation = _operation(document, operation_name)
    if operation is None:
        return None
    return OperationShape(operation.operation.value, root_fields(operation, document))


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
        elapsed_ms = (time.perf_counter() - started) * 1000
        context = self.execution_context
        ops: OpsRuntime | None = getattr(context.context, "ops", None)
        shape = self._operation_shape()
        if ops is None or (shape is not None and shape.kind == SUBSCRIPTION):
            return
        endpoint = shape.endpoint if shape is not None and shape.fields else "(invalid)"
        result = context.result
        errors = (result.errors if result is not None else None) or context.pre_execution_errors
        metrics = ops.metrics
        if not errors:
            metrics.record(endpoint, elapsed_ms, server_error=False, client_error=False, timed_out=False)
            return
        metrics.record(
            endpoint,
            elapsed_ms,
            server_error=any(is_internal(error) for error in errors),
            client_error=True,
            timed_out=any(_is_timeout(error) for error in errors),
        )

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        ctx: Context = context.context
        principal = getattr(ctx, "caller", None)
        shape = self._operation_shape() if principal is not None and principal.role is Role.ENGINE else None
        if principal is None or shape is None or shape.kind == SUBSCRIPTION:
            yield
            return
        ops = ctx.ops
        snapshot = ops.peek()
        limits = snapshot.limits if snapshot is not None else FALLBACK_LIMITS
        key = principal.sub
        try:
            ops.gate.check(key, limits.max_concurrent_sessions)
            if shape.cost:
                ops.limiter.take(key, shape.cost, limits.ai_calls_per_minute)
        except RateLimited as refused:
            # A preset result makes Strawberry skip execution: nothing of the operation runs.
            context.result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(refused.message, original_error=refused)]
            )
            yield
            return
        ops.gate.enter(key)
        try:
            yield
        finally:
            ops.gate.leave(key)


def live_body_limit(ops: OpsRuntime) -> Callable[[], Awaitable[int | None]]:
    """The body-size limit in force (fileUploadLimitMb), for BodySizeLimit; None if unknown."""

    async def limit() -> int | None:
        try:
            return (await ops.current()).limits.file_upload_limit_bytes
        except Exception:  # the static ceiling still applies; never fail a request on this
            log.warning("fileUploadLimitMb unavailable; only TRAINER_MAX_BODY_BYTES applies", exc_info=True)
            return None

    return limit
