"""performanceUpdated: a dashboard subscribed to a user receives the new profile after a log."""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from app.auth import Role, issue_token
from tests.conftest import make_settings
from tests.live import graphql_ws, live_server
from tests.upm_fixture import BUSAN, LOG_QUIZ, QUIZ, with_context

SUBSCRIBE = (
    "subscription($u: String!) { performanceUpdated(userId: $u) { quiz { totalQuizzes avgAccuracy } } }"
)


@pytest.fixture
def server(database_url):
    with live_server(database_url) as base:
        yield base


@pytest.fixture
def engine(database_url) -> str:
    """The live server's quiz engine (unbounded: it may log a user anywhere)."""
    return issue_token(make_settings(database_url), sub="quiz-engine", role=Role.ENGINE)


@pytest.fixture
def branch_operator(database_url) -> Any:
    def make(branch_id: str) -> str:
        return issue_token(make_settings(database_url), sub="op", role=Role.BRANCH, branch_id=branch_id)

    return make


async def next_data(ws):
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "next", message
    return message["payload"]


async def next_error_codes(ws: Any) -> list[str]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] in ("next", "error"), message
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    return [e["extensions"]["code"] for e in errors]


def subscribed(server: str, token: str, user_id: str) -> AbstractAsyncContextManager[Any]:
    """A dashboard's connection, subscribed to the user."""
    return graphql_ws(server, token, SUBSCRIBE, {"u": user_id})


async def log_quiz(http: httpx.AsyncClient, engine: str, payload: dict[str, Any]) -> None:
    body = (
        await http.post(
            "/graphql",
            json={"query": LOG_QUIZ, "variables": {"input": payload}},
            headers={"Authorization": f"Bearer {engine}"},
        )
    ).json()
    assert "errors" not in body, body


async def test_a_subscribed_dashboard_receives_the_new_profile(server, engine, branch_operator):
    # given: a branch operator's dashboard subscribed to u_01, authenticated in connection_init
    operator = branch_operator("b_seoul")
    async with httpx.AsyncClient(base_url=server) as http:
        await log_quiz(http, engine, with_context(QUIZ))
        async with subscribed(server, operator, "u_01") as ws:
            initial = await next_data(ws)
            # when: the engine logs another quiz for u_01
            await log_quiz(http, engine, with_context(QUIZ | {"correct": 9}))
            update = await next_data(ws)
    # then
    assert initial["data"]["performanceUpdated"]["quiz"] == {"totalQuizzes": 1, "avgAccuracy": 0.7}
    assert update["data"]["performanceUpdated"]["quiz"] == {
        "totalQuizzes": 2,
        "avgAccuracy": pytest.approx(0.8),
    }


async def test_a_subscription_outside_ones_scope_is_forbidden(server, engine, branch_operator):
    other_branch = branch_operator("b_busan")
    async with httpx.AsyncClient(base_url=server) as http:
        await log_quiz(http, engine, with_context(QUIZ))
    async with subscribed(server, other_branch, "u_01") as ws:
        codes = await next_error_codes(ws)
    assert codes == ["FORBIDDEN"]


async def test_a_subscription_ends_forbidden_when_the_user_leaves_ones_scope(server, engine, branch_operator):
    # given: a Seoul operator subscribed to u_01, who works in Seoul
    seoul = branch_operator("b_seoul")
    async with httpx.AsyncClient(base_url=server) as http:
        await log_quiz(http, engine, with_context(QUIZ))
        async with subscribed(server, seoul, "u_01") as ws:
            await next_data(ws)
            # when: u_01's next quiz is logged in Busan (the user moved)
            await log_quiz(http, engine, with_context(QUIZ, scope=BUSAN))
            codes = await next_error_codes(ws)
    # then: Busan's figures never reach Seoul
    assert codes == ["FORBIDDEN"]


@pytest.mark.parametrize("query", [SUBSCRIBE, "subscription {", "{ __typename }"])
async def test_a_subscription_without_a_valid_token_is_refused_before_parsing(server, query):
    # when: connection_init carries a token that does not verify
    async with graphql_ws(server, "not-a-jwt", query, {"u": "u_01"}) as ws:
        codes = await next_error_codes(ws)
    # then: the document, broken or not, is never looked at
    assert codes == ["UNAUTHENTICATED"]
