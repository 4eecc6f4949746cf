"""Health from real signals and diagnostics measured by the server (ops §5)."""

from __future__ import annotations

import asyncio
import logging

from tests.conftest import GraphQLClient, error_codes

FULL_HEALTH = """
{ health { status latencyMs uptimeHours
  engines { scenario prompt difficulty content gamification missions upm insights }
  engineDetails { engine status lastHeartbeatAt lastHeartbeatBy activeRulesetId rulesetState }
  activeRulesets { type rulesetId } } }
"""
STATUS = "{ health { status } }"
ENGINES = "{ health { status latencyMs uptimeHours engines { upm } } }"
DETAILS = "{ health { status engineDetails { engine } } }"
HEARTBEAT = """
mutation($engine: Engine!) {
  engineHeartbeat(engine: $engine) { engine receivedAt activeRuleset { rulesetId } }
}
"""
# slow, failing, timing out, then two that work
FIVE_OPERATIONS = (
    "{ features { key } }",
    "{ modelConfig { model } }",
    "{ limits { aiCallsPerMinute } }",
    "{ diagnostics { cpu } }",
    "{ releases { version } }",
)
DIAGNOSTICS = """
{ diagnostics { cpu memory memoryRssBytes errorRate clientErrorRate timeouts operations windowSeconds
  slowQueries { endpoint avgMs maxMs count } } }
"""


async def test_health_reports_a_real_database_round_trip(gql, admin):
    # when
    body = await gql(FULL_HEALTH, as_=admin)
    # then: nothing has failed and no engine has reported yet
    health = body["data"]["health"]
    assert health["status"] == "ok"
    assert health["latencyMs"] > 0
    assert health["uptimeHours"] >= 0
    assert set(health["engines"].values()) == {"unknown"}
    assert {r["type"]: r["rulesetId"] for r in health["activeRulesets"]}["upm"] == "upm_default_v1"


async def test_a_heartbeat_makes_an_engine_ok_and_silence_makes_it_stale(client_with, token, admin):
    # given: engines are stale after 1 s without a heartbeat
    gql = GraphQLClient(await client_with(ops_engine_stale_seconds=1), token)
    engine = token("engine", sub="upm-engine-1")
    # when
    beat = await gql(HEARTBEAT, {"engine": "upm"}, as_=engine)
    fresh = await gql(FULL_HEALTH, as_=admin)
    await asyncio.sleep(1.3)
    silent = await gql(FULL_HEALTH, as_=admin)
    await gql(HEARTBEAT, {"engine": "upm"}, as_=engine)
    back = await gql(STATUS, as_=admin)
    # then
    assert beat["data"]["engineHeartbeat"]["activeRuleset"] == {"rulesetId": "upm_default_v1"}
    assert fresh["data"]["health"]["status"] == "ok"
    assert fresh["data"]["health"]["engines"]["upm"] == "ok"
    assert fresh["data"]["health"]["engines"]["content"] == "unknown"
    detail = next(d for d in fresh["data"]["health"]["engineDetails"] if d["engine"] == "upm")
    assert detail["lastHeartbeatBy"] == "upm-engine-1" and detail["lastHeartbeatAt"]
    assert silent["data"]["health"]["engines"]["upm"] == "stale"
    assert silent["data"]["health"]["status"] == "degraded"
    assert back["data"]["health"]["status"] == "ok"


async def test_health_is_down_when_the_database_is_unreachable(client_with, token, admin):
    # given
    gql = GraphQLClient(
        await client_with(database_url="sqlite+aiosqlite:////nonexistent-dir/x/trainer.db"), token
    )
    # when
    health = (await gql(ENGINES, as_=admin))["data"]["health"]
    # then
    assert (health["status"], health["latencyMs"], health["engines"]) == ("down", None, {"upm": "unknown"})


async def test_operators_get_the_limited_views(gql, admin, token):
    # given
    branch = token("branch", branch_id="b_seoul")
    country = token("country", country_id="c_kr")
    region = token("region", region_id="r_apac")
    # when / then: branch sees status only
    assert (await gql(STATUS, as_=branch))["data"]["health"]["status"] == "ok"
    refused = await gql(ENGINES, as_=branch)
    assert set(error_codes(refused)) == {"FORBIDDEN"}
    assert refused["data"]["health"] == {
        "status": "ok",
        "latencyMs": None,
        "uptimeHours": None,
        "engines": None,
    }
    # country and region also see latency, uptime and engine statuses, not the details
    for operator in (country, region):
        body = await gql(ENGINES, as_=operator)
        assert "errors" not in body and body["data"]["health"]["engines"] == {"upm": "unknown"}
        assert error_codes(await gql(DETAILS, as_=operator)) == ["FORBIDDEN"]
    # admin sees everything; engines do not read health
    assert "errors" not in await gql(FULL_HEALTH, as_=admin)
    assert error_codes(await gql(STATUS, as_=token("engine"))) == ["FORBIDDEN"]


async def test_diagnostics_measure_the_operations_this_server_ran(gql, admin, monkeypatch, caplog):
    # given: one slow operation, one failing, one timing out, some normal ones
    from app.services.ops import config, features, limits

    original = features.list_toggles

    async def slow(*args, **kwargs):
        await asyncio.sleep(0.2)
        return await original(*args, **kwargs)

    async def broken(*_args, **_kwargs):
        raise RuntimeError("bug")

    async def timing_out(*_args, **_kwargs):
        raise TimeoutError("database did not answer")

    monkeypatch.setattr(features, "list_toggles", slow)
    monkeypatch.setattr(config, "read", broken)
    monkeypatch.setattr(limits, "read", timing_out)
    with caplog.at_level(logging.CRITICAL):
        for query in FIVE_OPERATIONS:
            await gql(query, as_=admin)
    # when
    body = await gql(DIAGNOSTICS, as_=admin)
    # then
    report = body["data"]["diagnostics"]
    assert report["operations"] == 5
    assert report["errorRate"] == 2 / 5  # the bug and the timeout
    assert report["timeouts"] == 1
    assert 0 <= report["cpu"] <= 1 and 0 < report["memory"] < 1 and report["memoryRssBytes"] > 0
    assert report["windowSeconds"] == 300
    slowest = report["slowQueries"][0]
    assert slowest["endpoint"] == "query features" and slowest["avgMs"] >= 200 and slowest["count"] == 1
    assert "query releases" in {s["endpoint"] for s in report["slowQueries"]}


async def test_diagnostics_are_admin_only(gql, token):
    for role, scope in (("region", {"region_id": "r"}), ("country", {"country_id": "c"}), ("engine", {})):
        assert error_codes(await gql(DIAGNOSTICS, as_=token(role, **scope))) == ["FORBIDDEN"]
