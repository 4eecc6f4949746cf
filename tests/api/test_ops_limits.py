"""The ops §6 limits are enforced, not just stored (see app.services.ops.enforcement for what each counts)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.services.ops.enforcement import FALLBACK_LIMITS
from tests.conftest import GraphQLClient, error_codes

UPDATE_LIMITS = """
mutation($input: UpdateLimitsInput!) { updateLimits(input: $input) { aiCallsPerMinute } }
"""
LIMITS = "{ limits { aiCallsPerMinute } }"
HEARTBEATS = "{ health { engineDetails { engine lastHeartbeatAt } } }"
FRAGMENTED = """
query { ...Both }
fragment Both on Query { a: limits { aiCallsPerMinute } b: modelConfig { model } __typename }
"""
HEARTBEAT = "mutation { engineHeartbeat(engine: upm) { engine } }"
TWO_OPERATIONS = """
query One { limits { aiCallsPerMinute } }
query Three { a: limits { aiCallsPerMinute } b: limits { aiCallsPerMinute } c: features { key } }
"""
ENGINE_SETTINGS = "{ modelConfig { model } features { key } limits { aiCallsPerMinute } }"
MIB = 1024 * 1024


def aliased(count: int, field: str = "limits { aiCallsPerMinute }") -> str:
    return "{ " + " ".join(f"f{i}: {field}" for i in range(count)) + " }"


def aliased_heartbeats(count: int) -> str:
    return (
        "mutation { "
        + " ".join(f"h{i}: engineHeartbeat(engine: upm) {{ engine }}" for i in range(count))
        + " }"
    )


async def set_limits(gql: GraphQLClient, admin: str, **limits: int) -> None:
    body = await gql(UPDATE_LIMITS, {"input": limits}, as_=admin)
    assert "errors" not in body, body


def rate_limited(body: dict[str, Any]) -> dict[str, Any]:
    assert error_codes(body) == ["RATE_LIMITED"], body
    assert body["data"] is None
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


async def test_each_aliased_root_field_counts_and_the_excess_is_refused(gql, admin, token):
    # given: 5 root fields per minute
    await set_limits(gql, admin, aiCallsPerMinute=5)
    engine = token("engine")
    # when
    first = await gql(aliased(3), as_=engine)  # 3 of 5
    second = await gql(aliased(3), as_=engine)  # 3 more do not fit in the 2 left
    third = await gql(aliased(2), as_=engine)  # 2 do
    fourth = await gql(LIMITS, as_=engine)  # the budget is spent
    # then
    assert "errors" not in first and len(first["data"]) == 3
    assert rate_limited(second)["retryAfterSeconds"] >= 1
    assert "errors" not in third and len(third["data"]) == 2
    extensions = rate_limited(fourth)
    assert 1 <= extensions["retryAfterSeconds"] <= 12  # one field refills in 60/5 s


async def test_an_operation_over_the_budget_runs_none_of_its_fields(gql, admin, token):
    # given
    await set_limits(gql, admin, aiCallsPerMinute=5)
    # when: six aliased heartbeats in one mutation
    body = await gql(aliased_heartbeats(6), as_=token("engine"))
    # then: refused whole, and no heartbeat was recorded
    assert "6 root fields" in body["errors"][0]["message"]
    # and it says that no wait helps (a retry time would never succeed), and what would fit
    assert "never" in body["errors"][0]["message"]
    assert rate_limited(body)["retryAfterSeconds"] is None
    assert rate_limited(body)["maxRootFields"] == 5
    details = (await gql(HEARTBEATS, as_=admin))["data"]["health"]["engineDetails"]
    assert all(d["lastHeartbeatAt"] is None for d in details)


async def test_fragments_cannot_hide_root_fields(gql, admin, token):
    # given: room for one root field
    await set_limits(gql, admin, aiCallsPerMinute=1)
    # when: two root fields behind a fragment (__typename is free)
    body = await gql(FRAGMENTED, as_=token("engine"))
    # then
    rate_limited(body)


async def test_each_operation_of_one_document_costs_its_own_root_fields(gql, admin, token):
    # given: room for four root fields
    await set_limits(gql, admin, aiCallsPerMinute=4)
    engine = token("engine")

    async def run(operation: str) -> dict[str, Any]:
        response = await gql.http.post(
            "/graphql",
            json={"query": TWO_OPERATIONS, "operationName": operation},
            headers={"Authorization": f"Bearer {engine}"},
        )
        body: dict[str, Any] = response.json()
        return body

    # when: One (1 field), then Three (3), then One again
    one, three, again = await run("One"), await run("Three"), await run("One")
    # then: the same document costs what the operation sent asks for, 1 + 3 = 4
    assert "errors" not in one and "errors" not in three, (one, three)
    assert len(three["data"]) == 3
    rate_limited(again)


async def test_a_limit_change_applies_to_the_next_request(gql, admin, token):
    # given: the budget is spent
    engine = token("engine")
    await set_limits(gql, admin, aiCallsPerMinute=2)
    assert "errors" not in await gql(aliased(2), as_=engine)
    rate_limited(await gql(LIMITS, as_=engine))
    # when: raised
    await set_limits(gql, admin, aiCallsPerMinute=50)
    # then: the raise is available at once
    assert "errors" not in await gql(aliased(10), as_=engine)
    # when: cut below what is left
    await set_limits(gql, admin, aiCallsPerMinute=1)
    # then
    rate_limited(await gql(aliased(2), as_=engine))


async def test_each_engine_has_its_own_budget_and_operators_are_not_metered(gql, admin, token):
    # given
    await set_limits(gql, admin, aiCallsPerMinute=1)
    scenario, quiz = token("engine", sub="scenario-engine"), token("engine", sub="quiz-engine")
    # when
    assert "errors" not in await gql(LIMITS, as_=scenario)
    other = await gql(LIMITS, as_=quiz)
    operator_bodies = [await gql(aliased(5), as_=admin) for _ in range(3)]
    # then
    assert "errors" not in other
    assert all("errors" not in body for body in operator_bodies)
    rate_limited(await gql(LIMITS, as_=scenario))


async def test_concurrent_operations_over_the_limit_are_refused(gql, admin, token, app, monkeypatch):
    # given: two heartbeats of the same engine held in flight
    from app.services.ops import health

    await set_limits(gql, admin, maxConcurrentSessions=2)
    release = asyncio.Event()
    original = health.heartbeat

    async def held(*args, **kwargs):
        await release.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(health, "heartbeat", held)
    engine, other_engine = token("engine", sub="upm-engine"), token("engine", sub="content-engine")
    in_flight = [asyncio.create_task(gql(HEARTBEAT, as_=engine)) for _ in range(2)]
    for _ in range(200):
        if await app.state.ops.coordination.in_flight("upm-engine") == 2:
            break
        await asyncio.sleep(0.01)
    # when
    third = await gql(LIMITS, as_=engine)
    other = await gql(LIMITS, as_=other_engine)
    release.set()
    held_bodies = await asyncio.gather(*in_flight)
    after = await gql(LIMITS, as_=engine)
    # then
    assert rate_limited(third)["retryAfterSeconds"] == 1
    assert "maxConcurrentSessions" in third["errors"][0]["message"]
    assert "errors" not in other
    assert all(body["data"]["engineHeartbeat"]["engine"] == "upm" for body in held_bodies)
    assert "errors" not in after
    assert await app.state.ops.coordination.in_flight("upm-engine") == 0


def padded(size: int) -> bytes:
    """A valid GraphQL request of about ``size`` bytes (whitespace is not a token)."""
    query = "{ limits { fileUploadLimitMb } }"
    return b'{"query": "' + query.encode() + b" " * size + b'"}'


async def test_request_bodies_are_bounded_by_the_live_file_upload_limit(gql, admin, client):
    # given
    await set_limits(gql, admin, fileUploadLimitMb=1)
    headers = {"Authorization": f"Bearer {admin}", "content-type": "application/json"}
    # when
    small = await client.post("/graphql", content=padded(MIB // 2), headers=headers)
    large = await client.post("/graphql", content=padded(MIB + MIB // 2), headers=headers)
    # then
    assert small.status_code == 200 and small.json()["data"]["limits"]["fileUploadLimitMb"] == 1
    assert large.status_code == 413
    error = large.json()["error"]
    assert error["code"] == "E_SCHEMA_MISMATCH"
    assert "fileUploadLimitMb" in error["message"] and "1 MB" in error["message"]
    assert error["details"] == {"limitBytes": MIB, "limit": "fileUploadLimitMb"}
    # when: raised, the same body passes on the next request
    await set_limits(gql, admin, fileUploadLimitMb=2)
    again = await client.post("/graphql", content=padded(MIB + MIB // 2), headers=headers)
    # then
    assert again.status_code == 200


async def test_chunked_bodies_are_bounded_too(gql, admin, client):
    # given
    await set_limits(gql, admin, fileUploadLimitMb=1)

    async def chunks():
        for _ in range(3):
            yield b" " * (MIB // 2)

    # when
    response = await client.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {admin}", "content-type": "application/json"},
    )
    # then
    assert response.status_code == 413


async def test_limit_checks_and_settings_reads_send_no_sql_of_their_own(gql, token, app, sql_statements):
    # given: a check of ops_state.version is due
    engine = token("engine")
    app.state.ops.invalidate()
    # when: an engine reads what it must obey, passing the body and rate checks
    sql_statements.reset()
    body = await gql(ENGINE_SETTINGS, as_=engine)
    # then: served from the worker's settings cache; the version check used the ops pool
    assert "errors" not in body
    assert sql_statements.statements == []


async def test_the_fallback_limits_are_those_a_new_installation_starts_with(gql, admin):
    # given: a fresh database (migration 0005 seeds the limits with its own literals)
    # when
    body = await gql("{ limits { aiCallsPerMinute fileUploadLimitMb maxConcurrentSessions } }", as_=admin)
    # then: a worker that has not read its settings yet enforces the same figures
    assert body["data"]["limits"] == FALLBACK_LIMITS.to_json()
