"""upm-api-v2 through REST (/operator/upm/...): every path with every role, the error envelope and
its statuses, Idempotency-Key, and one log sent through both transports stored once.

Every response is checked against the generated OpenAPI document (the ``rest`` fixture)."""

from __future__ import annotations

import asyncio

import pytest

from tests.rest_client import code
from tests.upm_fixture import LEARNING, LOG_SCENARIO, MISSION, QUIZ, SCENARIO, SUMMARY, with_context

ROLES = ("admin", "region", "country", "branch", "engine")
LOGS = {"scenario": SCENARIO, "quiz": QUIZ, "learning": LEARNING, "mission": MISSION}
SUMMARIES = ("scenario", "quiz", "learning", "mission", "skill", "summary")
SKILL_UPDATE = {"userId": "u_01", "skillId": "upsell", "delta": 0.07, "source": "scenario"}
SEOUL_CLAIMS = {
    "admin": {},
    "region": {"region_id": "r_apac"},
    "country": {"country_id": "c_kr"},
    "branch": {"branch_id": "b_seoul"},
    "engine": {},
}
SESSIONS = "query($u: String) { sessions(userId: $u, first: 50) { nodes { sessionId } } }"


@pytest.fixture
def as_role(token):
    return lambda role: token(role, **SEOUL_CLAIMS[role])


@pytest.fixture
def engine(token):
    return token("engine", sub="rest-engine")


async def _logged(rest, engine):
    response = await rest.post("/operator/upm/scenario/log", json=with_context(SCENARIO), as_=engine)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", LOGS)
@pytest.mark.parametrize("role", ROLES)
async def test_each_log_path_with_each_role(rest, as_role, kind, role):
    # when
    response = await rest.post(f"/operator/upm/{kind}/log", json=with_context(LOGS[kind]), as_=as_role(role))
    # then: engines and admin send logs (policy.LOG_WRITERS); operators may not
    if role in ("admin", "engine"):
        assert response.status_code == 200, response.text
        assert response.json()["userId"] == "u_01"
        assert response.json()["duplicate"] is False
    else:
        assert (response.status_code, code(response)) == (403, "FORBIDDEN")


@pytest.mark.parametrize("kind", LOGS)
async def test_a_log_without_a_token_is_401(rest, kind):
    # when
    response = await rest.post(f"/operator/upm/{kind}/log", json=with_context(LOGS[kind]))
    # then
    assert (response.status_code, code(response)) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize("path", SUMMARIES)
@pytest.mark.parametrize("role", ROLES)
async def test_each_summary_path_with_each_role(rest, engine, as_role, path, role):
    # given
    await _logged(rest, engine)
    # when
    response = await rest.get(f"/operator/upm/{path}/u_01", as_=as_role(role))
    # then: operators of u_01's scope read it; engines read the Insights input instead
    if role == "engine":
        assert (response.status_code, code(response)) == (403, "FORBIDDEN")
        return
    assert response.status_code == 200, response.text
    body = response.json()
    if path in ("scenario", "summary"):
        scenario = body["scenario"] if path == "summary" else body
        assert scenario["totalSessions"] == 1
        assert scenario["avgTurns"] == 13
    if path == "summary":
        assert set(body) >= {"scenario", "quiz", "learning", "missions", "skill", "updatedAt"}
        assert isinstance(body["updatedAt"], int)
    if path == "skill":
        assert set(body) >= {"upsell", "objection_handling", "product_knowledge"}


@pytest.mark.parametrize("path", SUMMARIES)
async def test_a_summary_outside_the_callers_scope_is_forbidden(rest, engine, token, path):
    # given
    await _logged(rest, engine)
    # when
    response = await rest.get(f"/operator/upm/{path}/u_01", as_=token("branch", branch_id="b_busan"))
    # then
    assert (response.status_code, code(response)) == (403, "FORBIDDEN")


async def test_a_summary_of_an_unknown_user_is_404_for_an_admin(rest, admin):
    # when
    response = await rest.get("/operator/upm/summary/u_nobody", as_=admin)
    # then
    assert (response.status_code, code(response)) == (404, "NOT_FOUND")


@pytest.mark.parametrize("role", ROLES)
async def test_skill_update_is_admin_only(rest, engine, as_role, role):
    # given
    await _logged(rest, engine)
    # when
    response = await rest.post("/operator/upm/skill/update", json=SKILL_UPDATE, as_=as_role(role))
    # then
    if role == "admin":
        assert response.status_code == 200, response.text
        assert response.json()["skillId"] == "upsell"
        assert 0 <= response.json()["mastery"] <= 1
    else:
        assert (response.status_code, code(response)) == (403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({**SCENARIO, "scope": with_context({})["scope"]}, 400, "E_VERSION_MISSING"),
        ({**SCENARIO, "version": with_context({})["version"]}, 400, "E_SCOPE_MISSING"),
        (with_context(SCENARIO, turns="many"), 400, "E_SCHEMA_MISMATCH"),
        (with_context(SCENARIO, surprise=1), 400, "E_SCHEMA_MISMATCH"),
        (with_context(SCENARIO, behaviorScore=7.5), 400, "E_SCHEMA_MISMATCH"),
        ([1, 2, 3], 400, "E_SCHEMA_MISMATCH"),
    ],
    ids=["no-version", "no-scope", "wrong-type", "unknown-field", "out-of-range", "not-an-object"],
)
async def test_a_bad_log_is_400_with_its_code_and_changes_nothing(
    rest, engine, admin, body, status, expected
):
    # when
    response = await rest.post("/operator/upm/scenario/log", json=body, as_=engine)
    # then
    assert (response.status_code, code(response)) == (status, expected)
    assert (await rest.get("/operator/upm/summary/u_01", as_=admin)).status_code == 404


async def test_a_malformed_body_is_400_not_500(rest, engine):
    # when
    response = await rest.post(
        "/operator/upm/quiz/log",
        content=b'{"userId": "u_01",',
        headers={"Content-Type": "application/json"},
        as_=engine,
    )
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")


async def test_a_log_outside_the_engines_bound_is_403_out_of_scope(rest, token):
    # given: an engine bound to Busan
    busan = token("engine", sub="busan-engine", branch_id="b_busan")
    # when: it logs about a user in Seoul
    response = await rest.post("/operator/upm/scenario/log", json=with_context(SCENARIO), as_=busan)
    # then
    assert (response.status_code, code(response)) == (403, "E_OUT_OF_SCOPE")


async def test_the_same_idempotency_key_and_body_replays_the_first_answer(rest, engine, admin):
    # given
    headers = {"Idempotency-Key": "rest-key-1"}
    first = await rest.post(
        "/operator/upm/scenario/log", json=with_context(SCENARIO), headers=headers, as_=engine
    )
    # when
    again = await rest.post(
        "/operator/upm/scenario/log", json=with_context(SCENARIO), headers=headers, as_=engine
    )
    # then
    assert first.status_code == again.status_code == 200
    assert first.json()["logId"] == "rest-key-1"
    assert again.json() == {**first.json(), "duplicate": True}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    summary = await rest.get("/operator/upm/scenario/u_01", as_=admin)
    assert summary.json()["totalSessions"] == 1


async def test_the_same_idempotency_key_with_another_body_is_refused(rest, engine, admin):
    # given
    headers = {"Idempotency-Key": "rest-key-2"}
    await rest.post("/operator/upm/scenario/log", json=with_context(SCENARIO), headers=headers, as_=engine)
    # when
    other = await rest.post(
        "/operator/upm/scenario/log", json=with_context(SCENARIO, turns=14), headers=headers, as_=engine
    )
    # then: the same code as GraphQL's logId reuse
    assert (other.status_code, code(other)) == (400, "E_SCHEMA_MISMATCH")
    summary = await rest.get("/operator/upm/scenario/u_01", as_=admin)
    assert summary.json()["avgTurns"] == 13


async def test_a_key_and_a_different_log_id_in_the_body_are_refused(rest, engine):
    # when
    response = await rest.post(
        "/operator/upm/scenario/log",
        json=with_context(SCENARIO, logId="one"),
        headers={"Idempotency-Key": "other"},
        as_=engine,
    )
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")


@pytest.mark.parametrize("rest_first", [True, False], ids=["rest-then-graphql", "graphql-then-rest"])
async def test_a_log_sent_through_both_transports_with_one_key_is_stored_once(
    rest, gql, engine, admin, rest_first
):
    # given
    async def through_rest():
        response = await rest.post(
            "/operator/upm/scenario/log",
            json=with_context(SCENARIO),
            headers={"Idempotency-Key": "both-ways"},
            as_=engine,
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def through_graphql():
        body = await gql(LOG_SCENARIO, {"input": with_context(SCENARIO, logId="both-ways")}, as_=engine)
        assert "errors" not in body, body
        return body["data"]["logScenario"]

    # when
    first, second = (
        (await through_rest(), await through_graphql())
        if rest_first
        else (await through_graphql(), await through_rest())
    )
    # then
    assert first["duplicate"] is False and second["duplicate"] is True
    assert first["recordId"] == second["recordId"]
    sessions = await gql(SESSIONS, {"u": "u_01"}, as_=admin)
    assert len(sessions["data"]["sessions"]["nodes"]) == 1
    summary = await gql(SUMMARY, {"userId": "u_01"}, as_=admin)
    assert summary["data"]["performanceSummary"]["scenario"]["totalSessions"] == 1


async def test_another_body_under_a_graphql_log_id_is_refused_through_rest(rest, gql, engine):
    # given
    await gql(LOG_SCENARIO, {"input": with_context(SCENARIO, logId="gql-key")}, as_=engine)
    # when
    response = await rest.post(
        "/operator/upm/scenario/log",
        json=with_context(SCENARIO, turns=3),
        headers={"Idempotency-Key": "gql-key"},
        as_=engine,
    )
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")


async def test_a_log_sent_as_another_media_type_is_400(rest, engine):
    # when
    response = await rest.post(
        "/operator/upm/scenario/log",
        content=b"userId=u_01",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        as_=engine,
    )
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")


async def test_logs_are_timed_in_diagnostics_under_their_route(rest, engine, admin):
    # given
    await _logged(rest, engine)
    await rest.post("/operator/upm/scenario/log", json={"surprise": 1}, as_=engine)
    # when
    diagnostics = (await rest.get("/operator/ops/diagnostics", as_=admin)).json()
    # then: one accepted, one refused as the client's mistake, none as the server's
    slow = {entry["endpoint"]: entry for entry in diagnostics["slowQueries"]}
    assert slow["POST /operator/upm/scenario/log"]["count"] == 2
    assert diagnostics["errorRate"] == 0
    assert diagnostics["clientErrorRate"] > 0


@pytest.fixture
async def through_fastapi(app):
    """The REST app without the fast lane: the log routes as FastAPI itself serves them."""
    import httpx

    from rest.app import Unmounted
    from tests.rest_client import RestClient

    api = next(route.app.app for route in app.routes if getattr(route, "path", "") == "/operator")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=Unmounted(api)), base_url="http://testserver"
    ) as http:
        yield lambda contract: RestClient(http, contract)


@pytest.mark.parametrize(
    ("body", "key", "who"),
    [
        (with_context(SCENARIO), "same-1", "engine"),
        (with_context(SCENARIO), None, "engine"),
        (with_context(SCENARIO, surprise=1), None, "engine"),
        ({**SCENARIO, "scope": with_context({})["scope"]}, None, "engine"),
        (with_context(SCENARIO), None, "branch"),
        (with_context(SCENARIO), None, None),
    ],
    ids=["keyed", "plain", "unknown-field", "no-version", "forbidden", "no-token"],
)
async def test_the_fast_lane_answers_as_fastapi_does(rest, through_fastapi, as_role, body, key, who):
    # given: the same request to the fast lane, and to FastAPI's own route on a second user
    fastapi = through_fastapi(rest.contract)
    other = {**body, "userId": "u_02"} if "userId" in body else body
    headers = {"Idempotency-Key": key} if key else {}
    token = as_role(who) if who else None
    # when
    fast = await rest.post("/operator/upm/scenario/log", json=body, headers=headers, as_=token)
    slow = await fastapi.post(
        "/operator/upm/scenario/log",
        json=other,
        headers={"Idempotency-Key": key + "b"} if key else {},
        as_=token,
    )
    # then
    assert fast.status_code == slow.status_code
    if fast.status_code == 200:
        assert set(fast.json()) == set(slow.json())
        assert fast.json()["skillDeltas"] == slow.json()["skillDeltas"]
    else:
        assert fast.json()["error"]["code"] == slow.json()["error"]["code"]
        assert fast.json()["error"]["details"].get("field") == slow.json()["error"]["details"].get("field")


async def test_a_log_over_the_engines_budget_is_429_and_not_stored(rest, engine, admin):
    # given: one operation per minute
    await rest.patch("/operator/ops/limits", json={"aiCallsPerMinute": 1}, as_=admin)
    await _logged(rest, engine)
    # when
    refused = await rest.post("/operator/upm/quiz/log", json=with_context(QUIZ), as_=engine)
    # then
    assert (refused.status_code, code(refused)) == (429, "RATE_LIMITED")
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await rest.get("/operator/upm/quiz/u_01", as_=admin)).json()["totalQuizzes"] == 0


async def test_a_log_in_flight_holds_one_of_the_engines_concurrent_sessions(rest, engine, admin):
    # given: one session at a time
    await rest.patch("/operator/ops/limits", json={"maxConcurrentSessions": 1}, as_=admin)
    # when: two logs at once from one engine
    responses = await asyncio.gather(
        rest.post("/operator/upm/scenario/log", json=with_context(SCENARIO), as_=engine),
        rest.post("/operator/upm/quiz/log", json=with_context(QUIZ), as_=engine),
    )
    # then: the second is refused while the first is being written; the first is stored
    assert sorted(response.status_code for response in responses) == [200, 429]
    refused = next(response for response in responses if response.status_code == 429)
    assert code(refused) == "RATE_LIMITED" and refused.headers["Retry-After"].isdigit()
