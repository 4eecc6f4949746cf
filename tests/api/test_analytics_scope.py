"""Analytics reads inside the caller's scope: out of scope is FORBIDDEN, never a quiet empty answer.

Policy (app/services/analytics/reads.py): KPIs of any unit inside one's node; rankings and
aggregates at one's own level or finer, restricted to one's node; the Insights input for users
inside one's node (engines: inside their optional bound).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.analytics_fixture import D1, LOG_EVENTS, event, load_fixture
from tests.conftest import error_codes

BUILD = "mutation($date: Date!) { buildSnapshots(date: $date) { snapshots } }"
KPIS = """
query($date: Date!, $scope: ScopeFilterInput) {
  kpis(date: $date, scope: $scope) {
    level scope { regionId countryId branchId teamId } activeUsers { value }
  }
}
"""
RANKING = """
query($level: Level!, $date: Date!) {
  ranking(level: $level, date: $date, by: AVG_XP_TOTAL) { rank scopeId }
}
"""
AGGREGATES = """
query($level: Level!, $from: Date!, $to: Date!, $scopeId: String) {
  aggregates(level: $level, from: $from, to: $to, scopeId: $scopeId) { scopeId }
}
"""
INSIGHTS = """
query($userId: ID!, $date: Date!) { insightsInput(userId: $userId, date: $date) { userId } }
"""


@pytest.fixture
async def built(gql, admin) -> None:
    await load_fixture(gql, admin)
    body = await gql(BUILD, {"date": D1}, as_=admin)
    assert "errors" not in body, body


def units(body: dict[str, Any], field: str) -> list[str]:
    assert "errors" not in body, body
    return [entry["scopeId"] for entry in body["data"][field]]


async def test_an_operator_without_a_filter_gets_its_own_node(gql, token, built):
    # when
    seoul = await gql(KPIS, {"date": D1}, as_=token("branch", branch_id="b_seoul"))
    korea = await gql(KPIS, {"date": D1}, as_=token("country", country_id="c_kr"))
    # then
    assert seoul["data"]["kpis"]["level"] == "BRANCH"
    assert seoul["data"]["kpis"]["activeUsers"]["value"] == 2
    assert korea["data"]["kpis"]["level"] == "COUNTRY"
    assert korea["data"]["kpis"]["activeUsers"]["value"] == 2


async def test_a_branch_operator_reads_its_teams_but_not_another_branch(gql, token, built):
    # given
    seoul = token("branch", branch_id="b_seoul")
    # when
    own_team = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_seoul_a"}}, as_=seoul)
    other_branch = await gql(KPIS, {"date": D1, "scope": {"branchId": "b_busan"}}, as_=seoul)
    other_team = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_busan_a"}}, as_=seoul)
    unknown_team = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_nowhere"}}, as_=seoul)
    other_aggregates = await gql(
        AGGREGATES, {"level": "BRANCH", "from": D1, "to": D1, "scopeId": "b_busan"}, as_=seoul
    )
    # then
    assert own_team["data"]["kpis"]["scope"]["branchId"] == "b_seoul"
    assert error_codes(other_branch) == ["FORBIDDEN"]
    assert error_codes(other_team) == ["FORBIDDEN"]
    assert error_codes(unknown_team) == ["FORBIDDEN"]  # a unit it cannot place is not shown either
    assert error_codes(other_aggregates) == ["FORBIDDEN"]


async def test_a_region_operator_cannot_read_another_region(gql, token, built):
    # given
    emea = token("region", region_id="r_emea")
    # when
    korea = await gql(KPIS, {"date": D1, "scope": {"countryId": "c_kr"}}, as_=emea)
    apac = await gql(KPIS, {"date": D1, "scope": {"regionId": "r_apac"}}, as_=emea)
    # then
    assert error_codes(korea) == ["FORBIDDEN"]
    assert error_codes(apac) == ["FORBIDDEN"]


async def test_an_admin_asking_for_a_unit_under_the_wrong_parent_gets_not_found(gql, admin, built):
    # when
    body = await gql(KPIS, {"date": D1, "scope": {"regionId": "r_emea", "countryId": "c_kr"}}, as_=admin)
    # then
    assert error_codes(body) == ["NOT_FOUND"]


async def test_rankings_and_aggregates_show_only_units_inside_the_callers_node(gql, token, built):
    # given
    korea = token("country", country_id="c_kr")
    # when
    branches = await gql(RANKING, {"level": "BRANCH", "date": D1}, as_=korea)
    countries = await gql(RANKING, {"level": "COUNTRY", "date": D1}, as_=korea)
    teams = await gql(AGGREGATES, {"level": "TEAM", "from": D1, "to": D1}, as_=korea)
    # then
    assert units(branches, "ranking") == ["b_busan", "b_seoul"]  # 50.0 each: a shared rank, then by id
    assert units(countries, "ranking") == ["c_kr"]
    assert units(teams, "aggregates") == ["t_busan_a", "t_seoul_a"]


async def test_a_level_coarser_than_the_callers_own_is_forbidden(gql, token, built):
    # given
    seoul = token("branch", branch_id="b_seoul")
    # when
    regions = await gql(RANKING, {"level": "REGION", "date": D1}, as_=seoul)
    countries = await gql(AGGREGATES, {"level": "COUNTRY", "from": D1, "to": D1}, as_=seoul)
    # then
    assert error_codes(regions) == ["FORBIDDEN"]
    assert error_codes(countries) == ["FORBIDDEN"]


async def test_engines_and_anonymous_callers_do_not_read_kpis(gql, token, built):
    # when
    engine = await gql(KPIS, {"date": D1}, as_=token("engine"))
    anonymous = await gql(KPIS, {"date": D1})
    # then
    assert error_codes(engine) == ["FORBIDDEN"]
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_insights_input_for_operators_in_scope_and_engines_in_their_bound(gql, token, built):
    # when
    branch_own = await gql(
        INSIGHTS, {"userId": "u_kr1", "date": D1}, as_=token("branch", branch_id="b_seoul")
    )
    branch_other = await gql(
        INSIGHTS, {"userId": "u_kr3", "date": D1}, as_=token("branch", branch_id="b_seoul")
    )
    engine_free = await gql(INSIGHTS, {"userId": "u_de1", "date": D1}, as_=token("engine"))
    engine_in = await gql(INSIGHTS, {"userId": "u_kr1", "date": D1}, as_=token("engine", region_id="r_apac"))
    engine_out = await gql(INSIGHTS, {"userId": "u_de1", "date": D1}, as_=token("engine", region_id="r_apac"))
    # then
    assert branch_own["data"]["insightsInput"]["userId"] == "u_kr1"
    assert error_codes(branch_other) == ["FORBIDDEN"]
    assert engine_free["data"]["insightsInput"]["userId"] == "u_de1"
    assert engine_in["data"]["insightsInput"]["userId"] == "u_kr1"
    assert error_codes(engine_out) == ["FORBIDDEN"]


async def test_insights_input_of_a_user_who_moved_that_day_needs_both_places_in_scope(gql, admin, token):
    # given: u_kr3's D1 saleslab session is Busan's; late that day an event files them in Seoul
    await load_fixture(gql, admin)
    moved = event("u_kr3", f"{D1}T23:00:00+00:00", "login") | {
        "scope": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul", "teamId": "t_seoul_a"}
    }
    assert "errors" not in await gql(LOG_EVENTS, {"records": [moved]}, as_=admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    # when: the snapshot now says Seoul
    seoul = await gql(INSIGHTS, {"userId": "u_kr3", "date": D1}, as_=token("branch", branch_id="b_seoul"))
    korea = await gql(INSIGHTS, {"userId": "u_kr3", "date": D1}, as_=token("country", country_id="c_kr"))
    # then: Seoul may not read Busan's session; Korea holds both
    assert error_codes(seoul) == ["FORBIDDEN"]
    assert korea["data"]["insightsInput"]["userId"] == "u_kr3"


async def test_an_unknown_user_is_not_found_for_an_admin_and_forbidden_for_others(gql, admin, token, built):
    # when
    as_admin = await gql(INSIGHTS, {"userId": "u_nobody", "date": D1}, as_=admin)
    as_branch = await gql(
        INSIGHTS, {"userId": "u_nobody", "date": D1}, as_=token("branch", branch_id="b_seoul")
    )
    as_engine = await gql(INSIGHTS, {"userId": "u_nobody", "date": D1}, as_=token("engine"))
    # then
    assert error_codes(as_admin) == ["NOT_FOUND"]
    assert error_codes(as_branch) == ["FORBIDDEN"]
    assert error_codes(as_engine) == ["FORBIDDEN"]
