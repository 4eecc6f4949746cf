"""This process's own counters: the single-process default, and the fallback while a shared
store is unreachable (then each worker counts alone, and ``health`` says so)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.coordination.verdicts import BUSY, NEVER, OK, RATE, Lease, Verdict, refuse

SECONDS_PER_MINUTE = 60.0
MAX_TRACKED_PRINCIPALS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    capacity: int
    updated: float


class MemoryAdmission:
    """Token buckets and in-flight counts per principal, in this process."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._in_flight: dict[str, int] = {}

    def verdict(self, key: str, cost: int, per_minute: int, max_in_flight: int) -> Verdict:
        """Charge ``cost`` root fields and take a slot, or charge nothing."""
        if self._in_flight.get(key, 0) >= max_in_flight:
            return Verdict(BUSY)
        if cost:
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
                return Verdict(NEVER)
            if cost > bucket.tokens:
                return Verdict(RATE, (cost - bucket.tokens) * SECONDS_PER_MINUTE / per_minute)
            bucket.tokens -= cost
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return Verdict(OK)

    def admit(self, key: str, cost: int, per_minute: int, max_in_flight: int) -> Lease:
        """Raises RateLimited, charging nothing, when the operation may not run now."""
        verdict = self.verdict(key, cost, per_minute, max_in_flight)
        if verdict.kind is not OK:
            refuse(verdict, cost, per_minute, max_in_flight)
        return Lease(key, "", shared=False)

    def release(self, lease: Lease) -> None:
        left = self._in_flight.get(lease.key, 0) - 1
        if left > 0:
            self._in_flight[lease.key] = left
        else:
            self._in_flight.pop(lease.key, None)

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)

    def _forget_idle(self, now: float) -> None:
        """Full buckets carry no information; drop them to bound memory."""
        for key in [k for k, b in self._buckets.items() if now - b.updated >= SECONDS_PER_MINUTE]:
            del self._buckets[key]
