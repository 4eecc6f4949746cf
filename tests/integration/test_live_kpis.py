"""Live KPIs on a real server (its lifespan runs the deriver): today's figures without a build,
and kpisUpdated."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.auth import Role, issue_token
from tests.conftest import make_settings
from tests.live import graphql_ws, live_server

LOG_EVENTS = """
mutation($records: [EventLogInput!]) { logEvents(records: $records) { accepted rejected } }
"""
KPIS = """
query($date: Date!, $scope: ScopeFilterInput) {
  kpis(date: $date, scope: $scope) {
    date final stale asOf
    activeUsers { value }
    versionContext { moduleVersion scenarioVersion promptVersion }
  }
}
"""
SUBSCRIBE = """
subscription($scope: ScopeFilterInput) {
  kpisUpdated(scope: $scope) {
    date final activeUsers { value } moduleCompletionRate { numerator denominator }
  }
}
"""
SEOUL = {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul", "teamId": "t_seoul_a"}


@pytest.fixture
def server(database_url):
    with live_server(database_url, TRAINER_LIVE_DERIVE_INTERVAL="0.1") as base:
        yield base


@pytest.fixture
def tokens(database_url) -> Any:
    settings = make_settings(database_url)

    def make(role: Role, **scope: Any) -> str:
        return issue_token(settings, sub=f"{role.value}-live", role=role, **scope)

    return make


def login(user: str, event_type: str = "login") -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "userId": user,
        "eventType": event_type,
        "context": {"moduleId": None, "quizId": None, "scenarioId": None, "turnIndex": None, "action": None},
        "version": {"moduleVersion": "m9", "scenarioVersion": "s9", "promptVersion": None},
        "scope": SEOUL,
    }


async def call(http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body: dict[str, Any] = response.json()
    return body


async def next_message(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return message


async def test_a_login_sent_now_appears_in_todays_kpis_within_seconds_without_a_build(server, tokens):
    # given: a live server and nothing logged today
    admin, engine = tokens(Role.ADMIN), tokens(Role.ENGINE)
    today = datetime.now(UTC).date().isoformat()
    async with httpx.AsyncClient(base_url=server) as http:
        before = await call(http, admin, KPIS, {"date": today})
        # when: an engine sends a login
        sent = await call(http, engine, LOG_EVENTS, {"records": [login("u_live1")]})
        assert sent["data"]["logEvents"]["accepted"] == 1, sent
        deadline = time.monotonic() + 10
        while True:
            after = await call(http, admin, KPIS, {"date": today})
            if after["data"]["kpis"]["activeUsers"]["value"] == 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    # then: provisional figures for today, from the live counters, with their versions
    assert before["data"]["kpis"]["activeUsers"]["value"] == 0
    kpis = after["data"]["kpis"]
    assert kpis["activeUsers"]["value"] == 1
    assert kpis["final"] is False and kpis["stale"] is False and kpis["asOf"] is not None
    assert kpis["versionContext"] == {"moduleVersion": "m9", "scenarioVersion": "s9", "promptVersion": None}


async def test_a_kpis_updated_subscriber_receives_the_login(server, tokens):
    # given: a Seoul operator's dashboard subscribed to its branch's KPIs
    operator, engine = tokens(Role.BRANCH, branch_id="b_seoul"), tokens(Role.ENGINE)
    async with (
        httpx.AsyncClient(base_url=server) as http,
        graphql_ws(server, operator, SUBSCRIBE, {"scope": None}) as ws,
    ):
        initial = await next_message(ws)
        # when: a Seoul user logs in and starts a module
        await call(http, engine, LOG_EVENTS, {"records": [login("u_live2")]})
        await call(http, engine, LOG_EVENTS, {"records": [login("u_live2", "module_start")]})
        update = await next_message(ws)
        while update["payload"]["data"]["kpisUpdated"]["moduleCompletionRate"]["denominator"] < 1:
            update = await next_message(ws)
    # then
    assert initial["payload"]["data"]["kpisUpdated"]["activeUsers"]["value"] == 0
    figures = update["payload"]["data"]["kpisUpdated"]
    assert figures["activeUsers"]["value"] == 1 and figures["final"] is False


async def test_kpis_updated_outside_ones_scope_is_forbidden(server, tokens):
    busan = tokens(Role.BRANCH, branch_id="b_busan")
    async with graphql_ws(server, busan, SUBSCRIBE, {"scope": {"branchId": "b_seoul"}}) as ws:
        message = await next_message(ws)
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
