"""KPIs (§4.1-4.4), rankings (§4.5) and aggregates (§3.5) equal the figures worked out by hand
from the fixture in tests/analytics_fixture.py (its docstring has the per-user table)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.analytics_fixture import D1, D2, LOG_EVENTS, event, load_fixture
from tests.conftest import error_codes

BUILD = """
mutation($date: Date!) { buildSnapshots(date: $date) { date snapshots } }
"""
KPIS = """
fragment V on VersionContext { moduleVersion scenarioVersion promptVersion }
query($date: Date!, $scope: ScopeFilterInput) {
  kpis(date: $date, scope: $scope) {
    date level scope { regionId countryId branchId teamId }
    activeUsers { value versionContext { ...V } }
    moduleCompletionRate { value numerator denominator versionContext { ...V } }
    quizPassRate { value numerator denominator versionContext { ...V } }
    upsellSuccessRate { value numerator denominator versionContext { ...V } }
    versionContext { ...V }
  }
}
"""
RANKING = """
query($level: Level!, $date: Date!, $by: RankBy!) {
  ranking(level: $level, date: $date, by: $by) {
    rank scopeId value versionContext { moduleVersion scenarioVersion promptVersion }
  }
}
"""
AGGREGATES = """
query($level: Level!, $from: Date!, $to: Date!, $scopeId: String) {
  aggregates(level: $level, from: $from, to: $to, scopeId: $scopeId) {
    date level scopeId scope { regionId countryId branchId teamId }
    activeUsers users totalSalesLabSessions
    moduleCompletionRate quizPassRate avgUpsellSuccessRate avgXpTotal
    moduleStarted moduleCompleted quizCompleted quizPassed upsellAttempts upsellSuccesses
    version { moduleVersion scenarioVersion promptVersion }
  }
}
"""


async def given_built_days(gql: Any, admin: str, *days: str) -> None:
    await load_fixture(gql, admin)
    for day in days:
        body = await gql(BUILD, {"date": day}, as_=admin)
        assert "errors" not in body, body


def version(module: str | None, scenario: str | None, prompt: str | None) -> dict[str, str | None]:
    return {"moduleVersion": module, "scenarioVersion": scenario, "promptVersion": prompt}


def figures(kpis: dict[str, Any]) -> dict[str, Any]:
    """The four KPIs as (value, numerator, denominator); activeUsers as its value."""
    out: dict[str, Any] = {"activeUsers": kpis["activeUsers"]["value"]}
    for name in ("moduleCompletionRate", "quizPassRate", "upsellSuccessRate"):
        kpi = kpis[name]
        out[name] = (kpi["value"], kpi["numerator"], kpi["denominator"])
    return out


async def kpis_of(gql: Any, token: str, day: str, scope: dict[str, str] | None = None) -> dict[str, Any]:
    body = await gql(KPIS, {"date": day, "scope": scope}, as_=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["kpis"]
    return result


async def test_organisation_kpis_equal_the_hand_computed_figures(gql, admin):
    # given
    await given_built_days(gql, admin, D1)
    # when
    kpis = await kpis_of(gql, admin, D1)
    # then
    assert kpis["level"] is None
    assert figures(kpis) == {
        "activeUsers": 4,  # kr1, kr2, jp1 (its +09:00 login is 15:30 UTC on D1), de1; kr3 never logged in
        "moduleCompletionRate": (0.8, 4, 5),  # done 1+1+1+0+1 / started 2+2+1+0+0
        "quizPassRate": (pytest.approx(1 / 3), 1, 3),  # kr1 7/10 passes at 0.7; kr2 6/10 and jp1 0/0 do not
        "upsellSuccessRate": (
            pytest.approx(2 / 3),
            2,
            3,
        ),  # attempted: kr1, kr2, jp1 (kr3 had 0); won: kr1, jp1
    }
    # versions: module m1.0 x4 vs m2.0 (de1); scenario s1.0 x4 vs s2.0 (kr1); prompt p1.0 x3 (kr2, jp1, de1)
    assert kpis["versionContext"] == version("m1.0", "s1.0", "p1.0")
    for name in ("activeUsers", "moduleCompletionRate", "quizPassRate", "upsellSuccessRate"):
        assert kpis[name]["versionContext"] == kpis["versionContext"]


async def test_region_country_and_team_kpis(gql, admin):
    # given
    await given_built_days(gql, admin, D1)
    # when
    apac = await kpis_of(gql, admin, D1, {"regionId": "r_apac"})
    korea = await kpis_of(gql, admin, D1, {"countryId": "c_kr"})
    seoul_team = await kpis_of(gql, admin, D1, {"teamId": "t_seoul_a"})
    # then
    assert apac["scope"] == {"regionId": "r_apac", "countryId": None, "branchId": None, "teamId": None}
    assert figures(apac) == {
        "activeUsers": 3,  # kr1, kr2, jp1
        "moduleCompletionRate": (0.6, 3, 5),  # 1+1+1+0 / 2+2+1+0
        "quizPassRate": (pytest.approx(1 / 3), 1, 3),
        "upsellSuccessRate": (pytest.approx(2 / 3), 2, 3),
    }
    assert apac["versionContext"] == version("m1.0", "s1.0", "p1.0")  # p1.0: kr2 and jp1 (2 of 4)
    assert korea["scope"] == {"regionId": "r_apac", "countryId": "c_kr", "branchId": None, "teamId": None}
    assert figures(korea) == {
        "activeUsers": 2,
        "moduleCompletionRate": (0.6, 3, 5),
        "quizPassRate": (0.5, 1, 2),
        "upsellSuccessRate": (0.5, 1, 2),
    }
    # prompt: p2.0 (kr1, seen 11:00), p1.0 (kr2, 11:30), p3.0 (kr3, 12:00): a tie goes to the latest seen
    assert korea["versionContext"] == version("m1.0", "s1.0", "p3.0")
    assert seoul_team["level"] == "TEAM"
    assert seoul_team["scope"] == {
        "regionId": "r_apac",
        "countryId": "c_kr",
        "branchId": "b_seoul",
        "teamId": "t_seoul_a",
    }
    assert figures(seoul_team) == {
        "activeUsers": 2,
        "moduleCompletionRate": (0.5, 2, 4),
        "quizPassRate": (0.5, 1, 2),
        "upsellSuccessRate": (0.5, 1, 2),
    }
    # scenario s2.0 (kr1, 11:00) vs s1.0 (kr2, 11:30): tie, the latest seen wins
    assert seoul_team["versionContext"] == version("m1.0", "s1.0", "p1.0")


async def test_zero_denominators_answer_null_not_an_error(gql, admin):
    # given: Berlin completed a module started before D1, took no quiz and no SalesLab session
    await given_built_days(gql, admin, D1)
    # when
    berlin = await kpis_of(gql, admin, D1, {"branchId": "b_berlin"})
    # then
    assert figures(berlin) == {
        "activeUsers": 1,
        "moduleCompletionRate": (None, 1, 0),
        "quizPassRate": (None, 0, 0),
        "upsellSuccessRate": (None, 0, 0),
    }
    assert berlin["versionContext"] == version("m2.0", "s1.0", "p1.0")


async def test_second_day_kpis_and_versions(gql, admin):
    # given
    await given_built_days(gql, admin, D1, D2)
    # when
    kpis = await kpis_of(gql, admin, D2)
    # then
    assert figures(kpis) == {
        "activeUsers": 2,  # kr1, jp1
        "moduleCompletionRate": (None, 1, 0),  # kr1 completed the module it started on D1
        "quizPassRate": (1.0, 1, 1),  # jp1 5/5
        "upsellSuccessRate": (None, 0, 0),
    }
    # module m1.1 (kr1, 08:41) vs m1.0 (jp1, 09:30): a tie, the latest seen wins
    assert kpis["versionContext"] == version("m1.0", "s1.0", "p1.0")


async def test_a_unit_without_activity_that_day_answers_zeros(gql, admin):
    # given: Berlin has no record on D2
    await given_built_days(gql, admin, D1, D2)
    # when
    berlin = await kpis_of(gql, admin, D2, {"branchId": "b_berlin"})
    # then
    assert figures(berlin) == {
        "activeUsers": 0,
        "moduleCompletionRate": (None, 0, 0),
        "quizPassRate": (None, 0, 0),
        "upsellSuccessRate": (None, 0, 0),
    }
    assert berlin["scope"]["regionId"] == "r_emea"
    assert berlin["versionContext"] == version(None, None, None)


async def test_kpis_of_a_day_not_built_are_not_found(gql, admin):
    # given: logs but no build
    await load_fixture(gql, admin)
    # when
    body = await gql(KPIS, {"date": D1}, as_=admin)
    # then
    assert error_codes(body) == ["NOT_FOUND"]


@pytest.mark.parametrize("settings_overrides", [{"quiz_pass_threshold": 0.6}])
async def test_the_quiz_pass_threshold_is_a_setting(gql, admin):
    # given: a threshold of 0.6, so kr2's 6/10 passes too
    await given_built_days(gql, admin, D1)
    # when
    seoul = await kpis_of(gql, admin, D1, {"teamId": "t_seoul_a"})
    # then
    assert figures(seoul)["quizPassRate"] == (1.0, 2, 2)


async def test_ranking_regions_by_average_xp_total(gql, admin):
    # given
    await given_built_days(gql, admin, D1)
    # when
    body = await gql(RANKING, {"level": "REGION", "date": D1, "by": "AVG_XP_TOTAL"}, as_=admin)
    # then: apac (100 + 0 + 50 + 0) / 4 = 37.5; emea 0 / 1 = 0
    assert [(e["rank"], e["scopeId"], e["value"]) for e in body["data"]["ranking"]] == [
        (1, "r_apac", 37.5),
        (2, "r_emea", 0.0),
    ]
    assert body["data"]["ranking"][1]["versionContext"] == version("m2.0", "s1.0", "p1.0")


async def test_ranking_ties_share_a_rank_and_nulls_come_last(gql, admin):
    # given
    await given_built_days(gql, admin, D1)
    # when
    by_xp = await gql(RANKING, {"level": "BRANCH", "date": D1, "by": "AVG_XP_TOTAL"}, as_=admin)
    by_modules = await gql(RANKING, {"level": "TEAM", "date": D1, "by": "MODULE_COMPLETION_RATE"}, as_=admin)
    by_quiz = await gql(RANKING, {"level": "COUNTRY", "date": D1, "by": "QUIZ_PASS_RATE"}, as_=admin)
    # then
    assert [(e["rank"], e["scopeId"], e["value"]) for e in by_xp["data"]["ranking"]] == [
        (1, "b_busan", 50.0),  # 50 / 1
        (1, "b_seoul", 50.0),  # (100 + 0) / 2
        (3, "b_berlin", 0.0),
        (3, "b_tokyo", 0.0),
    ]
    assert [(e["rank"], e["scopeId"], e["value"]) for e in by_modules["data"]["ranking"]] == [
        (1, "t_busan_a", 1.0),  # 1 / 1
        (2, "t_seoul_a", 0.5),  # 2 / 4
        (None, "t_berlin_a", None),  # 1 / 0
        (None, "t_tokyo_a", None),  # 0 / 0
    ]
    assert [(e["rank"], e["scopeId"], e["value"]) for e in by_quiz["data"]["ranking"]] == [
        (1, "c_kr", 0.5),  # 1 / 2
        (2, "c_jp", 0.0),  # 0 / 1
        (None, "c_de", None),  # 0 / 0
    ]


async def test_aggregates_over_a_date_range(gql, admin):
    # given
    await given_built_days(gql, admin, D1, D2)
    # when
    body = await gql(AGGREGATES, {"level": "REGION", "from": D1, "to": D2}, as_=admin)
    # then: by day, then region
    rows = body["data"]["aggregates"]
    assert [(r["date"], r["scopeId"]) for r in rows] == [(D1, "r_apac"), (D1, "r_emea"), (D2, "r_apac")]
    apac_d2 = rows[2]
    assert apac_d2 == {
        "date": D2,
        "level": "REGION",
        "scopeId": "r_apac",
        "scope": {"regionId": "r_apac", "countryId": None, "branchId": None, "teamId": None},
        "activeUsers": 2,
        "users": 2,
        "totalSalesLabSessions": 0,
        "moduleCompletionRate": None,  # 1 / 0
        "quizPassRate": 1.0,  # 1 / 1
        "avgUpsellSuccessRate": None,  # 0 / 0
        "avgXpTotal": 60.0,  # kr1 100 + 20 = 120, jp1 0: 120 / 2
        "moduleStarted": 0,
        "moduleCompleted": 1,
        "quizCompleted": 1,
        "quizPassed": 1,
        "upsellAttempts": 0,
        "upsellSuccesses": 0,
        "version": version("m1.0", "s1.0", "p1.0"),
    }


async def test_aggregates_of_one_team(gql, admin):
    # given
    await given_built_days(gql, admin, D1, D2)
    # when
    body = await gql(AGGREGATES, {"level": "TEAM", "from": D1, "to": D1, "scopeId": "t_seoul_a"}, as_=admin)
    # then
    (row,) = body["data"]["aggregates"]
    assert row["scope"] == {
        "regionId": "r_apac",
        "countryId": "c_kr",
        "branchId": "b_seoul",
        "teamId": "t_seoul_a",
    }
    assert (row["users"], row["activeUsers"], row["totalSalesLabSessions"]) == (2, 2, 2)
    assert (row["moduleCompletionRate"], row["quizPassRate"], row["avgUpsellSuccessRate"]) == (0.5, 0.5, 0.5)
    assert row["avgXpTotal"] == 50.0  # (100 + 0) / 2


async def test_aggregates_refuse_a_reversed_or_too_long_range(gql, admin):
    # when
    reversed_ = await gql(AGGREGATES, {"level": "REGION", "from": D2, "to": D1}, as_=admin)
    too_long = await gql(AGGREGATES, {"level": "REGION", "from": "2026-01-01", "to": "2026-03-01"}, as_=admin)
    # then
    assert error_codes(reversed_) == ["E_SCHEMA_MISMATCH"]
    assert error_codes(too_long) == ["E_SCHEMA_MISMATCH"]


async def test_a_team_seen_under_two_branches_is_a_row_under_each(gql, admin, token):
    # given: during D1 the team t_moved is logged under b_seoul at 09:00, then under b_busan at 10:00
    moved = [
        {**event("u_kr1", f"{D1}T09:00:00Z", "login"), "scope": _path("b_seoul")},
        {
            **event("u_kr3", f"{D1}T10:00:00Z", "login", version=("m2.0", "s1.0", "p1.0")),
            "scope": _path("b_busan"),
        },
    ]
    assert (await gql(LOG_EVENTS, {"records": moved}, as_=admin))["data"]["logEvents"]["accepted"] == 2
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    # when
    branches = await gql(AGGREGATES, {"level": "BRANCH", "from": D1, "to": D1}, as_=admin)
    teams = await gql(AGGREGATES, {"level": "TEAM", "from": D1, "to": D1}, as_=admin)
    busan = await gql(
        KPIS, {"date": D1, "scope": {"teamId": "t_moved"}}, as_=token("branch", branch_id="b_busan")
    )
    whole = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_moved"}}, as_=admin)
    # then: each branch counts its own user, and so does each branch's row of the team
    assert [(r["scopeId"], r["users"]) for r in branches["data"]["aggregates"]] == [
        ("b_busan", 1),
        ("b_seoul", 1),
    ]
    assert [(r["scopeId"], r["scope"]["branchId"], r["users"]) for r in teams["data"]["aggregates"]] == [
        ("t_moved", "b_busan", 1),
        ("t_moved", "b_seoul", 1),
    ]
    assert busan["data"]["kpis"]["activeUsers"]["value"] == 1  # Seoul's user stays Seoul's
    assert busan["data"]["kpis"]["scope"]["branchId"] == "b_busan"
    # the whole team, for an admin: both rows, the latest one's versions, only the shared parents
    assert whole["data"]["kpis"]["activeUsers"]["value"] == 2
    assert whole["data"]["kpis"]["scope"] == {
        "regionId": "r_apac",
        "countryId": "c_kr",
        "branchId": None,
        "teamId": "t_moved",
    }
    assert whole["data"]["kpis"]["activeUsers"]["versionContext"] == version("m2.0", "s1.0", "p1.0")


def _path(branch: str) -> dict[str, str]:
    return {"regionId": "r_apac", "countryId": "c_kr", "branchId": branch, "teamId": "t_moved"}
