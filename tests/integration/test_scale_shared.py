"""Two server processes on one PostgreSQL behave as one service, with Redis and without it:
one aiCallsPerMinute budget, one maxConcurrentSessions cap, live updates and settings pushed
across them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import asyncpg
import httpx
import pytest

from app.auth import Role
from tests.conftest import error_codes
from tests.dbs import _plain
from tests.live import live_server
from tests.scale import COORDINATION, LIMITS, UPDATE_LIMITS, a_log, bearer, call, next_total, subscribed
from tests.upm_fixture import LOG_SCENARIO

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_servers(database_url: str, backend: dict[str, str]) -> Iterator[tuple[str, str]]:
    # a minute between polls: only the push can carry a settings change within a second
    env = backend | {"TRAINER_OPS_REFRESH_SECONDS": "60"}
    with ExitStack() as stack:
        first = stack.enter_context(live_server(database_url, **env))
        second = stack.enter_context(live_server(database_url, **env))
        yield first, second


async def test_both_report_the_shared_store(two_servers, database_url, backend):
    admin = bearer(database_url, Role.ADMIN, "admin-test")
    async with httpx.AsyncClient(timeout=10) as http:
        for base in two_servers:
            # when
            health = (await call(http, base, COORDINATION, admin))["data"]["health"]
            # then
            assert health["coordination"] == {
                "backend": "redis" if "TRAINER_REDIS_URL" in backend else "postgres",
                "status": "ok",
                "limitsShared": True,
                "liveUpdatesShared": True,
            }


async def test_one_ai_calls_budget_across_both_processes(two_servers, database_url):
    # given: 10 root fields a minute for the engine
    base_a, base_b = two_servers
    admin = bearer(database_url, Role.ADMIN, "admin-test")
    engine = bearer(database_url, Role.ENGINE, "scenario-engine")
    async with httpx.AsyncClient(timeout=10) as http:
        assert "errors" not in await call(
            http, base_a, UPDATE_LIMITS, admin, {"input": {"aiCallsPerMinute": 10}}
        )
        # when: 40 single logs, alternating between the processes, 4 at a time
        started = time.monotonic()
        bodies: list[Any] = []
        for start in range(0, 40, 4):
            bodies += await asyncio.gather(
                *(
                    call(http, (base_a, base_b)[i % 2], LOG_SCENARIO, engine, a_log())
                    for i in range(start, start + 4)
                )
            )
        elapsed = time.monotonic() - started
    # then: one budget of 10, plus what refilled while sending (one every 6 s)
    accepted = [b for b in bodies if "errors" not in b]
    refused = [b for b in bodies if error_codes(b) == ["RATE_LIMITED"]]
    assert len(accepted) + len(refused) == 40, [b for b in bodies if b not in refused]
    assert 10 <= len(accepted) <= 10 + int(elapsed / 6)
    waits = {b["errors"][0]["extensions"]["retryAfterSeconds"] for b in refused}
    assert waits and all(1 <= w <= 6 for w in waits), waits


async def test_one_concurrency_cap_across_both_processes(two_servers, database_url):
    # given: two operations of the engine allowed at a time, and logs held in flight by a lock
    base_a, base_b = two_servers
    admin = bearer(database_url, Role.ADMIN, "admin-test")
    engine = bearer(database_url, Role.ENGINE, "scenario-engine")
    async with httpx.AsyncClient(timeout=30) as http:
        limits = {"input": {"maxConcurrentSessions": 2, "aiCallsPerMinute": 10000}}
        assert "errors" not in await call(http, base_a, UPDATE_LIMITS, admin, limits)
        lock = await asyncpg.connect(_plain(database_url))
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute("LOCK TABLE upm_log IN EXCLUSIVE MODE")
        try:
            held = [asyncio.create_task(call(http, base_a, LOG_SCENARIO, engine, a_log())) for _ in range(2)]
            third = await _refused_while(lambda: call(http, base_b, LIMITS, engine))
        finally:
            await transaction.rollback()
            await lock.close()
        # when: the lock goes and the held logs finish
        held_bodies = await asyncio.gather(*held)
        after = await call(http, base_b, LIMITS, engine)
    # then: B refused a third while A held two; all ran once the slots were free
    assert "maxConcurrentSessions of 2" in third["errors"][0]["message"]
    assert third["errors"][0]["extensions"]["retryAfterSeconds"] == 1
    assert all("errors" not in body for body in held_bodies)
    assert "errors" not in after


async def _refused_while(send: Any) -> Any:
    """The first refusal within 5 s (the held operations need a moment to reach the server)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = await send()
        if error_codes(body) == ["RATE_LIMITED"]:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"never refused: last answer {body}")


async def test_a_subscription_on_one_process_hears_a_log_sent_through_the_other(two_servers, database_url):
    # given: a dashboard subscribed through A, u_01 with one session
    base_a, base_b = two_servers
    admin = bearer(database_url, Role.ADMIN, "admin-test")
    engine = bearer(database_url, Role.ENGINE, "scenario-engine")
    async with httpx.AsyncClient(timeout=10) as http:
        assert "errors" not in await call(http, base_b, LOG_SCENARIO, engine, a_log())
        async with subscribed(base_a, admin, "u_01") as ws:
            # when: two more logs through B, one after the other
            seen = []
            for _ in range(2):
                sent = time.monotonic()
                assert "errors" not in await call(http, base_b, LOG_SCENARIO, engine, a_log())
                seen.append((await next_total(ws, 5), time.monotonic() - sent))
            # then: nothing more arrives (no duplicate delivery)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
    assert [total for total, _ in seen] == [2, 3]
    assert all(waited < 1.0 for _, waited in seen), seen


async def test_a_settings_change_through_one_process_is_pushed_to_the_other(two_servers, database_url):
    # given: B has the limits cached, and polls only once a minute
    base_a, base_b = two_servers
    admin = bearer(database_url, Role.ADMIN, "admin-test")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await call(http, base_b, LIMITS, admin))["data"]["limits"]["aiCallsPerMinute"] == 60
        # when
        changed = time.monotonic()
        assert "errors" not in await call(
            http, base_a, UPDATE_LIMITS, admin, {"input": {"aiCallsPerMinute": 7}}
        )
        # then: B has it within a second
        while (await call(http, base_b, LIMITS, admin))["data"]["limits"]["aiCallsPerMinute"] != 7:
            assert time.monotonic() - changed < 1.0, "not pushed within 1 s"
            await asyncio.sleep(0.02)
