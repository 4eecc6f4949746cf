"""Faults of a deployment of several processes: Redis stopped and back, a worker killed with
``kill -9``, PostgreSQL restarted. Real server processes; the servers that are stopped are
private ones (tests.private_servers), never the machine's shared Redis or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from app.auth import Role
from tests.conftest import error_codes
from tests.dbs import _plain
from tests.live import live_process, live_server
from tests.private_servers import private_postgres, private_redis
from tests.scale import (
    COORDINATION,
    LIMITS,
    TOTAL_SESSIONS,
    UPDATE_LIMITS,
    a_log,
    bearer,
    call,
    next_total,
    stored_log_ids,
    subscribed,
    until,
)
from tests.upm_fixture import LOG_SCENARIO

pytestmark = pytest.mark.postgres

UNLIMITED = {"input": {"aiCallsPerMinute": 100000, "maxConcurrentSessions": 100}}


class Load:
    """Engines sending scenario logs without pause through the given servers, as clients do:
    what is answered without error is acknowledged; what is not is sent again, same logId."""

    def __init__(self, http: httpx.AsyncClient, bases: list[str], token: str, senders: int = 4) -> None:
        self.http, self.bases, self.token, self.senders = http, bases, token, senders
        self.sent: set[str] = set()
        self.acked: set[str] = set()
        self.failures: list[Any] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _send(self, sender: int) -> None:
        turn = sender
        while not self._stop.is_set():
            variables = a_log()
            log_id = variables["input"]["logId"]
            self.sent.add(log_id)
            turn += 1
            base = self.bases[turn % len(self.bases)]
            try:
                response = await self.http.post(
                    f"{base}/graphql",
                    json={"query": LOG_SCENARIO, "variables": variables},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                self.failures.append(repr(exc))
                continue
            if response.status_code == 200 and "errors" not in body:
                self.acked.add(log_id)
            else:
                self.failures.append(body)
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._send(i)) for i in range(self.senders)]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def coordination(http: httpx.AsyncClient, base: str, admin: str) -> dict[str, Any]:
    health: dict[str, Any] = (await call(http, base, COORDINATION, admin))["data"]["health"]
    return health


def degraded(health: dict[str, Any]) -> bool:
    state = health["coordination"]
    return bool(
        health["status"] == "degraded"
        and state["status"] == "degraded"
        and not state["limitsShared"]
        and not state["liveUpdatesShared"]
    )


def recovered(health: dict[str, Any]) -> bool:
    state = health["coordination"]
    return bool(state["status"] == "ok" and state["limitsShared"] and state["liveUpdatesShared"])


async def total_sessions(http: httpx.AsyncClient, base: str, admin: str) -> int:
    total: int = (await call(http, base, TOTAL_SESSIONS, admin, {"u": "u_01"}))["data"]["scenarioSummary"][
        "totalSessions"
    ]
    return total


async def test_redis_stopped_and_restarted_under_load(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("several server processes need PostgreSQL (SQLite refuses --workers > 1)")
    with private_redis() as redis_server, ExitStack() as stack:
        # given: two servers sharing a private Redis, an engine sending logs through both
        prefix = f"fault-{uuid.uuid4().hex[:8]}"
        env = {"TRAINER_REDIS_URL": redis_server.url, "TRAINER_REDIS_PREFIX": prefix}
        env |= {"TRAINER_OPS_REFRESH_SECONDS": "60"}
        base_a = stack.enter_context(live_server(database_url, **env))
        base_b = stack.enter_context(live_server(database_url, **env))
        admin = bearer(database_url, Role.ADMIN, "admin-test")
        engine = bearer(database_url, Role.ENGINE, "scenario-engine")
        async with httpx.AsyncClient(timeout=10) as http:
            assert "errors" not in await call(http, base_a, UPDATE_LIMITS, admin, UNLIMITED)
            first = a_log()
            assert "errors" not in await call(http, base_a, LOG_SCENARIO, engine, first)
            async with subscribed(base_a, admin, "u_01") as ws:
                async with Load(http, [base_a, base_b], engine) as load:
                    await asyncio.sleep(0.5)
                    # when: Redis stops under the load, and comes back 1.5 s later (empty)
                    redis_server.stop()
                    await until(lambda: coordination(http, base_a, admin), degraded, 10, "A degraded")
                    await until(lambda: coordination(http, base_b, admin), degraded, 10, "B degraded")
                    during = len(load.acked)
                    await asyncio.sleep(1.5)
                    during = len(load.acked) - during
                    redis_server.start()
                    await until(lambda: coordination(http, base_a, admin), recovered, 15, "A back")
                    await until(lambda: coordination(http, base_b, admin), recovered, 15, "B back")
                    await asyncio.sleep(0.5)
                # then: every log was accepted, during the outage too
                assert load.failures == [], load.failures[:3]
                assert during > 0
                # and the subscription on A hears a log sent through B again
                with pytest.raises(TimeoutError):
                    while True:  # what arrived during the load
                        await asyncio.wait_for(ws.recv(), 0.5)
                last = a_log()
                assert "errors" not in await call(http, base_b, LOG_SCENARIO, engine, last)
                heard = await next_total(ws, 2)
                total = await total_sessions(http, base_a, admin)
        # and limits are kept in Redis again
        client = redis.Redis.from_url(redis_server.url)
        assert list(client.scan_iter(f"{prefix}:rate:*"))
        client.close()
    # and every acknowledged log is stored exactly once, and counted once
    stored = await stored_log_ids(database_url)
    acknowledged = load.acked | {first["input"]["logId"], last["input"]["logId"]}
    assert set(stored) == acknowledged and len(stored) == len(acknowledged)
    assert heard == total == len(stored)


async def test_a_killed_server_frees_its_slots_within_the_lease(database_url, backend):
    # given: two servers, leases of 2 s, two operations of the engine at a time
    env = backend | {"TRAINER_COORDINATION_LEASE_SECONDS": "2", "TRAINER_OPS_REFRESH_SECONDS": "60"}
    admin = bearer(database_url, Role.ADMIN, "admin-test")
    engine = bearer(database_url, Role.ENGINE, "scenario-engine")
    with live_process(database_url, **env) as (base_a, process_a), live_server(database_url, **env) as base_b:
        async with httpx.AsyncClient(timeout=30) as http:
            limits = {"input": {"maxConcurrentSessions": 2, "aiCallsPerMinute": 10000}}
            assert "errors" not in await call(http, base_a, UPDATE_LIMITS, admin, limits)
            async with Load(http, [base_a, base_b], engine, senders=2) as load:
                await asyncio.sleep(1.0)
            assert load.failures == [] and load.acked
            # and two logs held in flight on A by a lock on the log table
            lock = await asyncpg.connect(_plain(database_url))
            transaction = lock.transaction()
            await transaction.start()
            await lock.execute("LOCK TABLE upm_log IN EXCLUSIVE MODE")
            unanswered = [a_log(), a_log()]
            held = [asyncio.create_task(call(http, base_a, LOG_SCENARIO, engine, v)) for v in unanswered]
            try:
                # (B's probe is an operation of the engine too: it must not race the two for a slot)
                await asyncio.sleep(1.0)
                assert not any(task.done() for task in held), [t.result() for t in held if t.done()]
                await until(lambda: call(http, base_b, LIMITS, engine), _refused, 5, "B refuses a third")
                # when: A is killed with its two slots held
                process_a.kill()
                process_a.wait(timeout=10)
                killed = time.monotonic()
            finally:
                await transaction.rollback()
                await lock.close()
            answers = await asyncio.gather(*held, return_exceptions=True)
            # then: B admits again once the dead process's leases expire
            await until(lambda: call(http, base_b, LIMITS, engine), _admitted, 5, "B admits")
            freed_after = time.monotonic() - killed
            # and the client's retries of its unanswered logs, same logIds, are stored once
            retried = [await call(http, base_b, LOG_SCENARIO, engine, v) for v in unanswered]
            retried_again = [await call(http, base_b, LOG_SCENARIO, engine, v) for v in unanswered]
            total = await total_sessions(http, base_b, admin)
    assert all(isinstance(answer, httpx.HTTPError) for answer in answers), answers
    assert freed_after <= 2 + 1.5, freed_after
    assert all("errors" not in body for body in retried + retried_again)
    assert [body["data"]["logScenario"]["duplicate"] for body in retried_again] == [True, True]
    stored = Counter(await stored_log_ids(database_url))
    acknowledged = load.acked | {v["input"]["logId"] for v in unanswered}
    assert set(stored) == acknowledged and set(stored.values()) == {1}
    assert total == len(stored)


def _refused(body: Any) -> bool:
    return error_codes(body) == ["RATE_LIMITED"]


def _admitted(body: Any) -> bool:
    return "errors" not in body


async def test_postgres_restarted_under_load():
    with private_postgres() as postgres:
        # given: a server on a private PostgreSQL, an engine sending logs
        admin_conn = await asyncpg.connect(postgres.admin_url)
        await admin_conn.execute("CREATE DATABASE trainer")
        await admin_conn.close()
        database_url = postgres.url("trainer")
        admin = bearer(database_url, Role.ADMIN, "admin-test")
        engine = bearer(database_url, Role.ENGINE, "scenario-engine")
        probes: set[str] = set()
        with live_server(database_url) as base:
            async with httpx.AsyncClient(timeout=30) as http:
                assert "errors" not in await call(http, base, UPDATE_LIMITS, admin, UNLIMITED)
                async with Load(http, [base], engine, senders=2) as load:
                    await asyncio.sleep(0.5)
                    # when: PostgreSQL stops, and starts again 2 s later
                    postgres.stop("fast")
                    down = await _timed(http, base, engine, probes)
                    ready_down = (await http.get(f"{base}/readyz")).status_code
                    await asyncio.sleep(2)
                    postgres.start()
                    await until(
                        lambda: _timed(http, base, engine, probes), lambda a: a[0] is None, 15, "back"
                    )
                    await asyncio.sleep(0.5)
                ready_up = (await http.get(f"{base}/readyz")).status_code
                total = await total_sessions(http, base, admin)
        stored = await stored_log_ids(database_url)
    # then: while it was down, requests failed at once with a clear, coded error
    error, elapsed = down
    assert error is not None and elapsed < 2.0, down
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["reason"] == "DATABASE_UNAVAILABLE"
    assert error["extensions"]["retryAfterSeconds"] == 1
    assert "database is unavailable" in error["message"]
    assert ready_down == 503 and ready_up == 200
    # and the failures the load saw were those; everything acknowledged is stored, once
    assert load.failures and all(_unavailable(body) for body in load.failures), load.failures[:3]
    assert load.acked <= set(stored) <= load.sent | probes and len(stored) == len(set(stored))
    assert total == len(stored)


async def _timed(http: httpx.AsyncClient, base: str, engine: str, sent: set[str]) -> tuple[Any, float]:
    """One log: its first error (None when accepted) and how long the answer took."""
    variables = a_log()
    sent.add(variables["input"]["logId"])
    started = time.monotonic()
    body = await call(http, base, LOG_SCENARIO, engine, variables)
    return (body["errors"][0] if "errors" in body else None), time.monotonic() - started


def _unavailable(body: Any) -> bool:
    return isinstance(body, dict) and body["errors"][0]["extensions"].get("reason") == "DATABASE_UNAVAILABLE"


DASHBOARD_PAGE = "{ users(first: 100) { nodes { userId performance { scenario { totalSessions } } } } }"


async def test_a_dashboard_read_after_postgres_restarted_needs_no_retry_once_idle():
    """The pool pings only connections idle for a while (persistence/db.py): one that sat idle
    through a restart is replaced before use; one in steady use fails once, retryably, and is
    not used again."""
    with private_postgres() as postgres:
        # given: a server on a private PostgreSQL, a user with a log, a page read
        admin_conn = await asyncpg.connect(postgres.admin_url)
        await admin_conn.execute("CREATE DATABASE trainer")
        await admin_conn.close()
        database_url = postgres.url("trainer")
        admin = bearer(database_url, Role.ADMIN, "admin-test")
        engine = bearer(database_url, Role.ENGINE, "scenario-engine")
        with live_server(database_url) as base:
            async with httpx.AsyncClient(timeout=30) as http:
                assert "errors" not in await call(http, base, LOG_SCENARIO, engine, a_log())
                assert "errors" not in await call(http, base, DASHBOARD_PAGE, admin)
                # when: PostgreSQL restarts while the pool is idle
                postgres.stop("fast")
                await asyncio.sleep(1.5)
                postgres.start()
                after_idle = await call(http, base, DASHBOARD_PAGE, admin)
                # and when: it restarts again between two reads in quick succession
                postgres.stop("fast")
                postgres.start()
                in_use = [await call(http, base, DASHBOARD_PAGE, admin) for _ in range(12)]
    # then: the idle connections were replaced before use: no error at all
    assert "errors" not in after_idle, after_idle
    assert after_idle["data"]["users"]["nodes"][0]["performance"]["scenario"]["totalSessions"] == 1
    # and a connection in use failed at most once per pooled connection, retryably, then recovered
    failed = [body for body in in_use if "errors" in body]
    assert all(_unavailable(body) for body in failed), failed
    assert "errors" not in in_use[-1], in_use[-1]
