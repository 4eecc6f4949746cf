"""How the ops §6 limits are enforced: per-principal counters, one budget for the deployment.

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
  same moment in any worker; one more is refused with ``RATE_LIMITED`` (``retryAfterSeconds``
  1: when a slot frees is not known in advance). Each operation holds a lease on its slot;
  a worker renews its leases every third of ``TRAINER_COORDINATION_LEASE_SECONDS`` (15 s), so
  the slots of a worker that dies are free again within that time.
- ``fileUploadLimitMb`` — every HTTP request body, any caller (MiB, 1 MB = 1,048,576 bytes);
  ``TRAINER_MAX_BODY_BYTES`` stays the deployment's hard ceiling and the smaller one wins.
  Refused with 413 before the body is parsed.

Operators are not metered (their load is bounded by the request protections); subscriptions are
not operations in flight for these limits. A change through ``updateLimits`` applies to the next
request of the worker that made it, and to every other one as soon as the change's push
arrives (``TRAINER_OPS_REFRESH_SECONDS`` polling is the safety net).

Where the counters live (``app.coordination``): in Redis with ``TRAINER_REDIS_URL``, in
PostgreSQL without it, in the process on SQLite (which serves one worker). While the shared
store is unreachable each worker counts alone, and ``health.coordination`` says so.
"""

from __future__ import annotations

from app.services.ops.values import Limits

# Only until a worker has read its settings once (a WebSocket operation before any HTTP request);
# the values migration 0005 seeds.
FALLBACK_LIMITS = Limits(ai_calls_per_minute=60, file_upload_limit_mb=200, max_concurrent_sessions=30)
