"""Ingest benchmark: logEvents over HTTP against this machine's Core executemany ceiling.

    python -m bench.ingest                      # SQLite and PostgreSQL, 50,000 events each
    python -m bench.ingest --db sqlite --events 100000
    python -m bench.ingest --in-flight 2        # two requests at a time
    python -m bench.ingest --form typed         # the typed `records` argument, for comparison

For each database it starts a real server (uvicorn, one worker, loopback, a
free port) on a fresh migrated database and sends the events in batches of
1,000 through ``logEvents(recordsJson: ...)`` with httpx, one request at a
time, sampling the server's RSS. After each request it inserts the same rows
(as the server stores them) into the same table of a second fresh database
with SQLAlchemy Core executemany, one transaction per batch: the ceiling.
Alternating the two keeps a busy machine from favouring either side. It
prints events/s for both, the ratio (target >= 0.5) and the server's peak RSS.

Run on demand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from app.auth import Principal, Role, issue_token
from app.services.ingest.validation import LogKind, RecordError, validate_batch
from app.settings import Settings
from persistence.db import Database
from persistence.migrate import migrate
from persistence.models import EventLogRow

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 1000
TYPES = ("login", "module_start", "module_complete", "quiz_answer", "saleslab_turn", "reward_claim")
LOG_EVENTS = {
    "json": "mutation Log($records: JSON!) "
    "{ logEvents(recordsJson: $records) { accepted duplicates rejected statuses } }",
    "typed": "mutation Log($records: [EventLogInput!]!) "
    "{ logEvents(records: $records) { accepted duplicates rejected statuses } }",
}


def make_events(count: int, run: str) -> list[dict[str, Any]]:
    """Realistic records: 1,000 users in 50 teams of 10 branches, a mix of event types."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    events = []
    for i in range(count):
        user = i % 1000
        team = user % 50
        branch = team % 10
        event_type = TYPES[i % len(TYPES)]
        context: dict[str, Any] = {"moduleId": f"m_{i % 40}", "quizId": None, "scenarioId": None}
        if event_type == "saleslab_turn":
            context.update(scenarioId=f"s_{i % 25}", turnIndex=i % 12)
        elif event_type == "quiz_answer":
            context.update(quizId=f"q_{i % 30}", action="answer:b")
        elif event_type == "reward_claim":
            context["action"] = f"xp:{10 + i % 50}"
        events.append(
            {
                "eventId": f"{run}-{i:08d}",
                "timestamp": (start + timedelta(seconds=7 * i)).isoformat(),
                "userId": f"u_{user:05d}",
                "eventType": event_type,
                "context": context,
                "version": {"moduleVersion": "m-1.4.0", "scenarioVersion": "s-2.1", "promptVersion": None},
                "scope": {
                    "regionId": f"r_{branch % 2}",
                    "countryId": f"c_{branch % 4}",
                    "branchId": f"b_{branch:03d}",
                    "teamId": f"t_{team:03d}",
                },
            }
        )
    return events


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- databases --------------------------------------------------------------------------------


class Databases:
    """Fresh migrated databases for one run, removed afterwards."""

    def __init__(self, kind: str, pg_admin_url: str) -> None:
        self.kind = kind
        self.pg_admin_url = pg_admin_url
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        self.created: list[str] = []

    async def fresh(self, label: str) -> str:
        if self.kind == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp / label}.db"
        else:
            name = f"bench_ingest_{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}"
            conn = await asyncpg.connect(self.pg_admin_url, timeout=5)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            self.created.append(name)
            url = str(
                make_url(self.pg_admin_url)
                .set(drivername="postgresql+asyncpg", database=name)
                .render_as_string(hide_password=False)
            )
        await migrate(Settings(database_url=url))
        return url

    async def drop_all(self) -> None:
        for name in self.created:
            conn = await asyncpg.connect(self.pg_admin_url, timeout=5)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
        for path in self.tmp.glob("*"):
            path.unlink()
        self.tmp.rmdir()


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PeakRss:
    """Samples a process's resident memory every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def server(database_url: str, secret: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "TRAINER_DATABASE_URL": database_url,
        "TRAINER_JWT_SECRET": secret,
        "TRAINER_ENV": "test",
        "TRAINER_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the two measurements ---------------------------------------------------------------------


@dataclass
class Result:
    database: str
    form: str
    events: int
    in_flight: int
    http_seconds: float
    ceiling_seconds: float
    peak_rss: int

    @property
    def http_rate(self) -> float:
        return self.events / self.http_seconds

    @property
    def ceiling_rate(self) -> float:
        return self.events / self.ceiling_seconds


class Ceiling:
    """The same rows straight into the same table: Core executemany, one transaction per batch."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(Settings(database_url=database_url))
        self.table = SQLModel.metadata.tables[EventLogRow.__tablename__]

    async def insert(self, rows: list[dict[str, Any]]) -> float:
        start = time.perf_counter()
        async with self.db.transaction() as session:
            await session.execute(sa.insert(self.table), rows)
        return time.perf_counter() - start


async def post(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/graphql", content=body)
    response.raise_for_status()
    answer = response.json()
    if "errors" in answer or answer["data"]["logEvents"]["accepted"] != BATCH:
        raise RuntimeError(f"unexpected answer: {str(answer)[:500]}")


async def measure(
    base: str,
    token: str,
    ceiling: Ceiling,
    bodies: list[bytes],
    rows: list[list[dict[str, Any]]],
    in_flight: int,
) -> tuple[float, float]:
    """Seconds for all batches over HTTP and for the same batches into the ceiling database.

    They alternate round by round (``in_flight`` requests at once, then the same
    batches one after the other into the ceiling database), so that whatever else
    the machine is doing weighs on both sides alike. The first round warms up.
    """
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=in_flight)
    http_seconds = ceiling_seconds = 0.0
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        for number, start in enumerate(range(0, len(bodies), in_flight)):
            began = time.perf_counter()
            await asyncio.gather(*(post(client, body) for body in bodies[start : start + in_flight]))
            http = time.perf_counter() - began
            direct = sum([await ceiling.insert(batch) for batch in rows[start : start + in_flight]])
            if number:
                http_seconds += http
                ceiling_seconds += direct
    return http_seconds, ceiling_seconds


def server_rows(events: list[dict[str, Any]], now: datetime) -> list[list[dict[str, Any]]]:
    """The rows the server stores for these events (built before the clock starts)."""
    sender = Principal(sub="bench-engine", role=Role.ENGINE)
    out = []
    for batch in batches(events, BATCH):
        verdicts = validate_batch(LogKind.EVENT, batch, sender, Settings().event_types, now)
        out.append([verdict for verdict in verdicts if not isinstance(verdict, RecordError)])
    return out


def body(batch: list[dict[str, Any]], form: str = "json") -> bytes:
    return orjson.dumps({"query": LOG_EVENTS[form], "variables": {"records": batch}})


async def run_one(kind: str, count: int, pg_admin_url: str, in_flight: int, form: str) -> Result:
    dbs = Databases(kind, pg_admin_url)
    secret = secrets.token_hex(32)
    token = issue_token(Settings(jwt_secret=secret), sub="bench-engine", role=Role.ENGINE, ttl_seconds=3600)
    events = make_events(count + in_flight * BATCH, run="ev")  # the first round warms both sides up
    try:
        http_url, ceiling_url = await dbs.fresh("http"), await dbs.fresh("ceiling")
        bodies = [body(batch, form) for batch in batches(events, BATCH)]
        rows = server_rows(events, datetime.now(UTC))
        ceiling = Ceiling(ceiling_url)
        try:
            with server(http_url, secret) as (base, pid), PeakRss(pid) as rss:
                http_seconds, ceiling_seconds = await measure(base, token, ceiling, bodies, rows, in_flight)
        finally:
            await ceiling.db.dispose()
        return Result(kind, form, count, in_flight, http_seconds, ceiling_seconds, rss.peak)
    finally:
        await dbs.drop_all()


def validation_rate() -> float:
    """Records/s of the shared validator alone (one core, no database): the part ingestion adds."""
    events = make_events(BATCH, run="v")
    sender = Principal(sub="bench-engine", role=Role.ENGINE)
    types = Settings().event_types
    best = min(
        timeit.repeat(
            lambda: validate_batch(LogKind.EVENT, events, sender, types, datetime.now(UTC)),
            number=5,
            repeat=5,
        )
    )
    return 5 * BATCH / best


def report(result: Result) -> None:
    print(
        f"{result.database:<10} {result.events:>8,} events, {result.in_flight} in flight  "
        f"logEvents({'recordsJson' if result.form == 'json' else 'records'}) {result.http_rate:>9,.0f}/s  "
        f"Core executemany ceiling {result.ceiling_rate:>9,.0f}/s  "
        f"ratio {result.http_rate / result.ceiling_rate:.2f} (target >= 0.5)  "
        f"server peak RSS {result.peak_rss / 2**20:,.0f} MiB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=50_000, help="a multiple of 1,000 (default 50,000)")
    parser.add_argument(
        "--form",
        choices=["json", "typed"],
        default="json",
        help="the argument form: recordsJson (default) or typed records, for comparison",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=1,
        help="requests sent at once (default 1: one after the other); the ceiling stays sequential",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("TRAINER_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL),
        help="a PostgreSQL database to connect to while creating and dropping the benchmark's",
    )
    args = parser.parse_args(argv)
    if args.events < BATCH or args.events % BATCH:
        parser.error("--events must be a positive multiple of 1,000")
    if args.in_flight < 1 or args.events % (args.in_flight * BATCH):
        parser.error("--in-flight must be at least 1 and divide --events / 1,000")
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    python = sys.version.split()[0]
    print(f"batches of {BATCH:,}, Python {python}, {os.cpu_count()} CPUs, uvicorn with one worker")
    print(f"validation alone: {validation_rate():,.0f} events/s", flush=True)
    for kind in kinds:
        try:
            report(asyncio.run(run_one(kind, args.events, args.pg_admin_url, args.in_flight, args.form)))
        except (OSError, asyncpg.PostgresError) as exc:
            if kind != "postgres":
                raise
            print(f"postgres   skipped: no server at {args.pg_admin_url} ({exc.__class__.__name__}: {exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
