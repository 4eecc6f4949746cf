"""E_AGG_CONFLICT: aggregates that disagree with the snapshots they came from are refused, not served.

Each test tampers with a derived table in raw SQL, as a buggy job or a hand edit would.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text

from tests.analytics_fixture import D1, load_fixture
from tests.conftest import error_codes

BUILD = """
mutation($date: Date!, $rebuild: Boolean) { buildSnapshots(date: $date, rebuild: $rebuild) { snapshots } }
"""
KPIS = """
query($date: Date!, $scope: ScopeFilterInput) { kpis(date: $date, scope: $scope) { quizPassRate { value } } }
"""
RANKING = """
query($level: Level!, $date: Date!) { ranking(level: $level, date: $date, by: QUIZ_PASS_RATE) { scopeId } }
"""
AGGREGATES = """
query($level: Level!, $from: Date!, $to: Date!) {
  aggregates(level: $level, from: $from, to: $to) { scopeId }
}
"""
DAY = date.fromisoformat(D1)


async def given_built_d1(gql: Any, admin: str) -> None:
    await load_fixture(gql, admin)
    body = await gql(BUILD, {"date": D1}, as_=admin)
    assert "errors" not in body, body


async def tamper(app: Any, sql: str) -> None:
    async with app.state.db.engine.begin() as conn:
        result = await conn.execute(text(sql), {"day": DAY})
        assert result.rowcount == 1


async def test_a_tampered_counter_is_a_conflict_where_it_is_read(gql, admin, app):
    # given: Seoul's team claims 2 passed quizzes; its snapshots say 1
    await given_built_d1(gql, admin)
    await tamper(app, "UPDATE agg_team SET quiz_passed = 2 WHERE team_id = 't_seoul_a' AND day = :day")
    # when
    kpis = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_seoul_a"}}, as_=admin)
    ranking = await gql(RANKING, {"level": "TEAM", "date": D1}, as_=admin)
    aggregates = await gql(AGGREGATES, {"level": "TEAM", "from": D1, "to": D1}, as_=admin)
    other_team = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_busan_a"}}, as_=admin)
    # then
    assert error_codes(kpis) == ["E_AGG_CONFLICT"]
    assert kpis["errors"][0]["extensions"]["conflicts"] == [{"date": D1, "scopeId": "t_seoul_a"}]
    assert error_codes(ranking) == ["E_AGG_CONFLICT"]
    assert error_codes(aggregates) == ["E_AGG_CONFLICT"]
    assert "errors" not in other_team  # the check covers what is read, and only that


async def test_a_tampered_rate_is_a_conflict(gql, admin, app):
    # given: the counters are intact, the stored rate is not what they give
    await given_built_d1(gql, admin)
    await tamper(app, "UPDATE agg_region SET quiz_pass_rate = 0.9 WHERE region_id = 'r_apac' AND day = :day")
    # when
    body = await gql(KPIS, {"date": D1, "scope": {"regionId": "r_apac"}}, as_=admin)
    # then
    assert error_codes(body) == ["E_AGG_CONFLICT"]


async def test_a_missing_aggregate_row_is_a_conflict(gql, admin, app):
    # given
    await given_built_d1(gql, admin)
    await tamper(app, "DELETE FROM agg_branch WHERE branch_id = 'b_tokyo' AND day = :day")
    # when
    ranking = await gql(RANKING, {"level": "BRANCH", "date": D1}, as_=admin)
    kpis = await gql(KPIS, {"date": D1, "scope": {"branchId": "b_tokyo"}}, as_=admin)
    # then
    assert error_codes(ranking) == ["E_AGG_CONFLICT"]
    assert error_codes(kpis) == ["E_AGG_CONFLICT"]


async def test_a_tampered_snapshot_is_a_conflict_too(gql, admin, app):
    # given: a snapshot changed after its aggregates were built
    await given_built_d1(gql, admin)
    await tamper(
        app, "UPDATE snapshot_daily_user SET quiz_completed = 3 WHERE user_id = 'u_de1' AND day = :day"
    )
    # when
    body = await gql(KPIS, {"date": D1}, as_=admin)
    # then
    assert error_codes(body) == ["E_AGG_CONFLICT"]


async def test_a_rebuild_clears_the_conflict(gql, admin, app):
    # given
    await given_built_d1(gql, admin)
    await tamper(app, "UPDATE agg_team SET quiz_passed = 2 WHERE team_id = 't_seoul_a' AND day = :day")
    # when
    rebuilt = await gql(BUILD, {"date": D1, "rebuild": True}, as_=admin)
    kpis = await gql(KPIS, {"date": D1, "scope": {"teamId": "t_seoul_a"}}, as_=admin)
    # then
    assert "errors" not in rebuilt, rebuilt
    assert kpis["data"]["kpis"]["quizPassRate"]["value"] == 0.5  # 1 / 2 again
