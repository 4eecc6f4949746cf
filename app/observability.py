"""What an operator watches: Prometheus metrics, JSON log lines, request ids.

Metrics (``prometheus-client``) are process-wide. With several workers (``serve --workers N``)
the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before any worker starts: each
worker then keeps its values in files there, and ``/metrics``, answered by whichever worker gets
the scrape, adds up every worker's (prometheus-client's multiprocess mode). Gauges (pool use, open
subscriptions, the live-analytics lag) are sampled: in every worker each second in that mode, and
in the answering one at each scrape.

Per request the hot path pays for a few counter and histogram updates (label values looked up
once per operation shape) and one log line; everything else happens at scrape time.

One log line per HTTP request (logger ``trainer_console.requests``): time, level, request id,
the principal's ``sub`` and role, the operation's type, name and root fields, duration, HTTP
status and the error codes. ``X-Request-Id`` is taken from the caller when it is an id, else
made here; it is echoed in the response and is the id audit entries carry.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.ids import request_ids
from app.logformat import MULTIPROCESS_ENV, JsonFormatter, configure_logging
from app.validation import is_id

# Decided once, as prometheus-client decides where values live when it is first imported.
MULTIPROCESS = MULTIPROCESS_ENV in os.environ

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "trainer_graphql_requests",
    "GraphQL operations by type, operation name and root fields; outcome ok or error",
    ["operation_type", "operation_name", "root_fields", "outcome"],
)
LATENCY = Histogram(
    "trainer_graphql_request_duration_seconds",
    "Time to run a GraphQL operation (parse, validate, execute), by operation",
    ["operation_type", "operation_name", "root_fields"],
    buckets=_LATENCY_BUCKETS,
)
ERRORS = Counter("trainer_graphql_errors", "GraphQL errors by contract code", ["code"])
REFUSALS = Counter("trainer_rate_limit_refusals", "Operations refused by an engine limit (RATE_LIMITED)")
WRITER_BATCH = Histogram(
    "trainer_writer_batch_units",
    "Units of work committed together by the group-commit writer",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
WRITER_COMMIT = Histogram(
    "trainer_writer_commit_seconds",
    "Time of one group commit (run every unit, COMMIT)",
    buckets=_LATENCY_BUCKETS,
)
WRITER_FAILURES = Counter("trainer_writer_commit_failures", "Group commits that failed as a whole")
POOL_IN_USE = Gauge(
    "trainer_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "trainer_db_pool_connections_open",
    "Database connections the pool holds open (in use or idle)",
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge("trainer_subscriptions_open", "GraphQL subscriptions open", multiprocess_mode="livesum")
ANALYTICS_LAG = Gauge(
    "trainer_analytics_lag_seconds",
    "How far live analytics are behind the logs; NaN while unknown",
    multiprocess_mode="livemax",
)

# Operation names come from clients: a label per name would let anyone grow the series without
# bound. The first ``MAX_OPERATION_NAMES`` names a process sees are kept, later ones are "(other)".
MAX_OPERATION_NAMES = 200
OTHER = "(other)"
ANONYMOUS = "(anonymous)"
INVALID = "(invalid)"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_names: set[str] = set()
_series: dict[tuple[str, str | None, str], tuple[Any, Any, Any]] = {}
_codes: dict[str, Any] = {}


def _name_label(name: str | None) -> str:
    if name is None:
        return ANONYMOUS
    if name in _names:
        return name
    if len(_names) >= MAX_OPERATION_NAMES or not _NAME.match(name):
        return OTHER
    _names.add(name)
    return name


def _children(kind: str, name: str | None, fields: str) -> tuple[Any, Any, Any]:
    key = (kind, name, fields)
    children = _series.get(key)
    if children is None:
        labels = (kind, _name_label(name), fields)
        children = (
            REQUESTS.labels(*labels, "ok"),
            REQUESTS.labels(*labels, "error"),
            LATENCY.labels(*labels),
        )
        _series[key] = children
    return children


def operation_done(kind: str, name: str | None, fields: str, seconds: float, codes: Iterable[str]) -> None:
    """One GraphQL operation finished (``fields``: its root fields, sorted, comma-separated;
    ``codes``: its errors' contract codes, empty when it succeeded)."""
    ok, failed, latency = _children(kind, name, fields)
    latency.observe(seconds)
    failed_once = False
    for code in codes:
        failed_once = True
        counter = _codes.get(code)
        if counter is None:
            counter = _codes[code] = ERRORS.labels(code)
        counter.inc()
    (failed if failed_once else ok).inc()


def rate_limited() -> None:
    REFUSALS.inc()


def writer_committed(units: int, seconds: float) -> None:
    """The group-commit writer's hook (persistence.writer knows nothing of Prometheus)."""
    WRITER_BATCH.observe(units)
    WRITER_COMMIT.observe(seconds)


def writer_failed(units: int, seconds: float) -> None:
    WRITER_FAILURES.inc()


# --- gauges, sampled -------------------------------------------------------------------------

LagSource = Callable[[], float | None]
_lag_source: LagSource | None = None


def register_analytics_lag(source: LagSource | None) -> None:
    """Where the live-analytics lag comes from: a callable answering seconds behind the logs,
    or None when it cannot tell (then the gauge is absent). Called at each sample."""
    global _lag_source
    _lag_source = source


class Gauges:
    """Samples the gauges of one application (its database pool, its subscription broker)."""

    def __init__(self, pool_status: Callable[[], tuple[int, int] | None], subscriptions: Callable[[], int]):
        self.pool_status = pool_status
        self.subscriptions = subscriptions

    def sample(self) -> None:
        status = self.pool_status()
        if status is not None:
            in_use, open_ = status
            POOL_IN_USE.set(in_use)
            POOL_SIZE.set(open_)
        SUBSCRIPTIONS.set(self.subscriptions())
        lag = None
        if _lag_source is not None:
            try:
                lag = _lag_source()
            except Exception:  # a broken source must not break the scrape
                logging.getLogger("trainer_console.metrics").exception("analytics lag source failed")
        if lag is None:
            lag = float("nan")  # unknown (no source registered, or it cannot tell)
        ANALYTICS_LAG.set(lag)

    async def sample_every(self, seconds: float) -> None:
        while True:
            self.sample()
            await asyncio.sleep(seconds)


def process_stopped() -> None:
    """This worker is going away: its live gauges no longer count (multiprocess mode)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, every worker's added up in multiprocess mode."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_refusal(token: str | None, production: bool, authorization: str | None) -> tuple[int, str] | None:
    """None when a scrape may read /metrics, else (HTTP status, message).

    With ``TRAINER_METRICS_TOKEN`` set the scrape needs ``Authorization: Bearer <it>``; without
    it /metrics is open in development and off in production."""
    if token is None:
        return (404, "metrics are off: set TRAINER_METRICS_TOKEN") if production else None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return 401, "metrics need Authorization: Bearer <TRAINER_METRICS_TOKEN>"
    return None


# --- the per-request record and its middleware ------------------------------------------------

SCOPE_KEY = "trainer.request"
requests_log = logging.getLogger("trainer_console.requests")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # logged at DEBUG: probes and scrapes


class RequestRecord:
    """What the request log line says; the GraphQL layer fills in the operation and caller."""

    __slots__ = ("codes", "operation_name", "operation_type", "request_id", "role", "root_fields", "sub")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.sub: str | None = None
        self.role: str | None = None
        self.operation_type: str | None = None
        self.operation_name: str | None = None
        self.root_fields: str | None = None
        self.codes: list[str] | None = None


def record_of(scope: MutableMapping[str, Any]) -> RequestRecord | None:
    record: RequestRecord | None = scope.get(SCOPE_KEY)
    return record


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class RequestTelemetry:
    """Outermost ASGI middleware: the request id (the caller's X-Request-Id when it is an id,
    else a fresh one), echoed as X-Request-Id, and one log line when the response is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ids = request_ids()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope["headers"], b"x-request-id")
        request_id = given if is_id(given) else self.ids.next()
        assert request_id is not None
        record = RequestRecord(request_id)
        scope[SCOPE_KEY] = record
        status = 500
        echoed = (b"x-request-id", request_id.encode())

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            level = logging.DEBUG if scope["path"] in _QUIET_PATHS else logging.INFO
            if requests_log.isEnabledFor(level):
                # A record made here and handed to the handlers: Logger.log would also walk the
                # stack for the caller's file and line, which these lines do not show.
                line = logging.LogRecord(requests_log.name, level, "", 0, "request", None, None)
                line.request_id = request_id
                line.fields = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "durationMs": round((time.perf_counter() - started) * 1000, 3),
                    "sub": record.sub,
                    "role": record.role,
                    "operationType": record.operation_type,
                    "operationName": record.operation_name,
                    "rootFields": record.root_fields,
                    "errorCodes": record.codes or [],
                }
                requests_log.handle(line)


__all__ = [
    "ANALYTICS_LAG",
    "Gauges",
    "JsonFormatter",
    "RequestRecord",
    "RequestTelemetry",
    "configure_logging",
    "exposition",
    "metrics_refusal",
    "operation_done",
    "rate_limited",
    "record_of",
    "register_analytics_lag",
    "writer_committed",
]
