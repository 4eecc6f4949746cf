"""Diagnostics (ops §5.2) measured by the server itself, in memory, per worker process.

``graphql_schema.guard.OperationGuard`` times every query and mutation and hands the outcome to
``OperationMetrics``, which keeps the last ``TRAINER_OPS_DIAGNOSTICS_WINDOW_SECONDS`` in
short buckets: a constant amount of work per operation and bounded memory.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

OTHER_ENDPOINT = "(other)"
MAX_ENDPOINTS_PER_BUCKET = 256
SLOW_QUERY_COUNT = 5


@dataclass(slots=True)
class _Timing:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


@dataclass(slots=True)
class _Bucket:
    index: int
    operations: int = 0
    server_errors: int = 0
    client_errors: int = 0
    timeouts: int = 0
    timings: dict[str, _Timing] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SlowQuery:
    endpoint: str
    avg_ms: float
    max_ms: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricsSummary:
    window_seconds: float
    operations: int
    server_errors: int
    client_errors: int
    timeouts: int
    slow_queries: tuple[SlowQuery, ...]

    @property
    def error_rate(self) -> float:
        """Rounded to 6 places, as both transports show it."""
        return round(self.server_errors / self.operations, 6) if self.operations else 0.0

    @property
    def client_error_rate(self) -> float:
        return round(self.client_errors / self.operations, 6) if self.operations else 0.0


class OperationMetrics:
    """Counts and timings of the recent window; ``record`` is O(1)."""

    def __init__(
        self,
        window_seconds: float,
        bucket_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self._clock = clock
        self._buckets: deque[_Bucket] = deque()

    def _current(self) -> _Bucket:
        index = math.floor(self._clock() / self.bucket_seconds)
        if not self._buckets or self._buckets[-1].index != index:
            self._buckets.append(_Bucket(index))
            self._prune(index)
        return self._buckets[-1]

    def _prune(self, index: int) -> None:
        oldest = index - math.ceil(self.window_seconds / self.bucket_seconds)
        while self._buckets and self._buckets[0].index <= oldest:
            self._buckets.popleft()

    def record(
        self, endpoint: str, elapsed_ms: float, *, server_error: bool, client_error: bool, timed_out: bool
    ) -> None:
        bucket = self._current()
        bucket.operations += 1
        bucket.server_errors += server_error or timed_out
        bucket.client_errors += client_error and not (server_error or timed_out)
        bucket.timeouts += timed_out
        if endpoint not in bucket.timings and len(bucket.timings) >= MAX_ENDPOINTS_PER_BUCKET:
            endpoint = OTHER_ENDPOINT
        timing = bucket.timings.get(endpoint)
        if timing is None:
            timing = bucket.timings[endpoint] = _Timing()
        timing.count += 1
        timing.total_ms += elapsed_ms
        timing.max_ms = max(timing.max_ms, elapsed_ms)

    def summary(self, slow_count: int = SLOW_QUERY_COUNT) -> MetricsSummary:
        self._prune(math.floor(self._clock() / self.bucket_seconds))
        totals: dict[str, _Timing] = {}
        operations = server_errors = client_errors = timeouts = 0
        for bucket in self._buckets:
            operations += bucket.operations
            server_errors += bucket.server_errors
            client_errors += bucket.client_errors
            timeouts += bucket.timeouts
            for endpoint, timing in bucket.timings.items():
                total = totals.setdefault(endpoint, _Timing())
                total.count += timing.count
                total.total_ms += timing.total_ms
                total.max_ms = max(total.max_ms, timing.max_ms)
        slowest = sorted(
            (
                SlowQuery(endpoint, round(t.total_ms / t.count, 3), round(t.max_ms, 3), t.count)
                for endpoint, t in totals.items()
            ),
            key=lambda slow: (-slow.avg_ms, slow.endpoint),
        )
        return MetricsSummary(
            self.window_seconds,
            operations,
            server_errors,
            client_errors,
            timeouts,
            tuple(slowest[:slow_count]),
        )


class ProcessSampler:
    """CPU and memory of this process as shares of the machine (0..1, like the spec)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpus = psutil.cpu_count() or 1
        self._process.cpu_percent(interval=None)  # primes the counter: later calls measure since

    def cpu(self) -> float:
        """Average CPU share since the previous call (or start)."""
        # over a very short interval psutil can overshoot; a share of the machine is at most 1
        return min(1.0, round(float(self._process.cpu_percent(interval=None)) / 100 / self._cpus, 4))

    def memory(self) -> tuple[float, int]:
        rss = int(self._process.memory_info().rss)
        return round(rss / psutil.virtual_memory().total, 4), rss


@dataclass(frozen=True, slots=True)
class DiagnosticsReport:
    cpu: float
    memory: float
    memory_rss_bytes: int
    metrics: MetricsSummary


def report(metrics: OperationMetrics, sampler: ProcessSampler) -> DiagnosticsReport:
    memory, rss = sampler.memory()
    return DiagnosticsReport(sampler.cpu(), memory, rss, metrics.summary())
