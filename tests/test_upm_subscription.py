"""performanceUpdated: a dashboard subscribed to a user receives the new profile after a log."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from app.auth import Role, issue_token
from tests.conftest import make_settings
from tests.live import live_server
from tests.upm_fixture import LOG_QUIZ, QUIZ, with_context

SUBSCRIBE = (
    "subscription($u: String!) { performanceUpdated(userId: $u) { quiz { totalQuizzes avgAccuracy } } }"
)


@pytest.fixture
def server(database_url):
    with live_server(database_url) as base:
        yield base


async def next_data(ws):
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "next", message
    return message["payload"]


async def test_a_subscribed_dashboard_receives_the_new_profile(server, database_url):
    # given: a branch operator's dashboard subscribed to u_01, authenticated in connection_init
    settings = make_settings(database_url)
    operator = issue_token(settings, sub="op", role=Role.BRANCH, branch_id="b_seoul")
    engine = issue_token(settings, sub="quiz-engine", role=Role.ENGINE)
    async with httpx.AsyncClient(base_url=server) as http:
        first = await http.post(
            "/graphql",
            json={"query": LOG_QUIZ, "variables": {"input": with_context(QUIZ)}},
            headers={"Authorization": f"Bearer {engine}"},
        )
        assert "errors" not in first.json()
        url = server.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {operator}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": SUBSCRIBE, "variables": {"u": "u_01"}},
                    }
                )
            )
            initial = await next_data(ws)
            # when: the engine logs another quiz for u_01
            await http.post(
                "/graphql",
                json={"query": LOG_QUIZ, "variables": {"input": with_context(QUIZ | {"correct": 9})}},
                headers={"Authorization": f"Bearer {engine}"},
            )
            update = await next_data(ws)
    # then
    assert initial["data"]["performanceUpdated"]["quiz"] == {"totalQuizzes": 1, "avgAccuracy": 0.7}
    assert update["data"]["performanceUpdated"]["quiz"] == {
        "totalQuizzes": 2,
        "avgAccuracy": pytest.approx(0.8),
    }


async def test_a_subscription_outside_ones_scope_is_forbidden(server, database_url):
    settings = make_settings(database_url)
    engine = issue_token(settings, sub="quiz-engine", role=Role.ENGINE)
    other_branch = issue_token(settings, sub="op", role=Role.BRANCH, branch_id="b_busan")
    async with httpx.AsyncClient(base_url=server) as http:
        await http.post(
            "/graphql",
            json={"query": LOG_QUIZ, "variables": {"input": with_context(QUIZ)}},
            headers={"Authorization": f"Bearer {engine}"},
        )
    url = server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {other_branch}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {"u": "u_01"}}}
            )
        )
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] in ("next", "error")
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
