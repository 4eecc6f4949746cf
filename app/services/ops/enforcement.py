"""How the ops §6 limits are enforced: per-principal counters, kept in each worker process.

``graphql_schema.guard.OperationGuard`` charges them before every query and mutation;
``app.services.ops.limits`` reads and updates the stored values.

What each limit counts:

- ``aiCallsPerMinute`` — per engine principal (the token's ``sub``), the root fields of its
  GraphQL queries and mutations: ``{ a: modelConfig b: modelConfig }`` costs 2, so aliases and
  fragments cannot slip past (``__typename`` is free). A token bucket of that many fields,
  refilled evenly over 60 s. An operation is admitted whole or not at all: if its cost exceeds
  what is left, none of its fields run and it fails with ``RATE_LIMITED`` and
  ``retryAfterSeconds`` (when the bucket will hold enough; ``null``, with ``maxRootFields``,
  when the operation alone costs more than the whole budget). Partial admission would run some
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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import RateLimited
from app.services.ops.values import Limits

SECONDS_PER_MINUTE = 60.0
MAX_TRACKED_PRINCIPALS = 10_000
# Only until a worker has read its settings once (a WebSocket operation before any HTTP request);
# the values migration 0005 seeds.
FALLBACK_LIMITS = Limits(ai_calls_per_minute=60, file_upload_limit_mb=200, max_concurrent_sessions=30)


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
            # No wait can make it fit: say so, instead of a retry time that never succeeds.
            raise RateLimited(
                f"this operation has {cost} root fields and aiCallsPerMinute is {per_minute}: it can "
                f"never be admitted; send at most {per_minute} root fields per operation",
                retry_after_seconds=None,
                maxRootFields=per_minute,
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
