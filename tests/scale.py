"""Helpers of the tests that run several server processes on one PostgreSQL (issue 14)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection

from app.auth import Role, issue_token
from tests.conftest import make_settings
from tests.dbs import _plain
from tests.live import graphql_ws
from tests.upm_fixture import SCENARIO, with_context

REDIS_URL = os.environ.get("TRAINER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UPDATE_LIMITS = "mutation($input: UpdateLimitsInput!) { updateLimits(input: $input) { aiCallsPerMinute } }"
LIMITS = "{ limits { aiCallsPerMinute } }"
COORDINATION = "{ health { status coordination { backend status limitsShared liveUpdatesShared } } }"
SUBSCRIBE = "subscription($u: String!) { performanceUpdated(userId: $u) { scenario { totalSessions } } }"
TOTAL_SESSIONS = "query($u: String!) { scenarioSummary(userId: $u) { totalSessions } }"

T = TypeVar("T")


def bearer(database_url: str, role: Role, sub: str) -> str:
    return issue_token(make_settings(database_url), sub=sub, role=role)


async def call(http: httpx.AsyncClient, base: str, query: str, token: str, variables: Any = None) -> Any:
    response = await http.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def a_log(user_id: str = "u_01") -> dict[str, Any]:
    return {"input": with_context(SCENARIO | {"userId": user_id, "logId": uuid.uuid4().hex})}


async def until(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float, what: str) -> T:
    """Polls ``probe`` until ``ok`` says yes; fails with the last answer after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        answer = await probe()
        if ok(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s; last {answer}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def subscribed(base: str, token: str, user_id: str) -> AsyncIterator[ClientConnection]:
    """A performanceUpdated subscription through ``base``, its first (current) answer read."""
    async with graphql_ws(base, token, SUBSCRIBE, {"u": user_id}) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] == "next" and "errors" not in first["payload"], first
        yield ws


async def next_total(ws: ClientConnection, within: float) -> int:
    message = json.loads(await asyncio.wait_for(ws.recv(), within))
    total: int = message["payload"]["data"]["performanceUpdated"]["scenario"]["totalSessions"]
    return total


async def stored_log_ids(database_url: str) -> list[str]:
    """Every scenario log the database holds, one entry per stored row."""
    conn = await asyncpg.connect(_plain(database_url))
    try:
        return [row["log_id"] for row in await conn.fetch("SELECT log_id FROM upm_log")]
    finally:
        await conn.close()
