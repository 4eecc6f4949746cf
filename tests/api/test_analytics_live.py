"""Live counters through the API: a day not built answers provisionally, a build finalises it
from the counters, a late record makes a built day stale until an (audited) rebuild, a rebuild
that disagrees with the counters is E_AGG_CONFLICT, and what a new quiz pass threshold changes.

The deriver runs in the app's lifespan (not started by ASGITransport): here each test folds
when its records are in, as the background loop would.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from app.services.analytics import live
from persistence.models import LIVE_PATH_DAY, LIVE_USER_DAY
from tests.analytics_fixture import D1, LOG_EVENTS, event, load_fixture
from tests.api.test_analytics_kpis import figures
from tests.conftest import error_codes

KPIS = """
query($date: Date!) {
  kpis(date: $date) {
    final stale asOf
    activeUsers { value }
    moduleCompletionRate { value numerator denominator }
    quizPassRate { value numerator denominator }
    upsellSuccessRate { value numerator denominator }
    versionContext { moduleVersion scenarioVersion promptVersion }
  }
}
"""
AGGREGATES = """
query($date: Date!) {
  aggregates(level: TEAM, from: $date, to: $date) { scopeId users activeUsers avgXpTotal final }
}
"""
RANKING = """
query($date: Date!) { ranking(level: BRANCH, date: $date, by: MODULE_COMPLETION_RATE) { rank scopeId value } }
"""
BUILD = """
mutation($date: Date!, $rebuild: Boolean!) { buildSnapshots(date: $date, rebuild: $rebuild) { snapshots } }
"""


async def fold(app: Any, threshold: float = 0.7) -> None:
    await live.fold_now(app.state.db, threshold=threshold)


async def read(gql: Any, admin: str, query: str, day: str = D1) -> dict[str, Any]:
    body = await gql(query, {"date": day}, as_=admin)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def build(gql: Any, admin: str, rebuild: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = await gql(BUILD, {"date": D1, "rebuild": rebuild}, as_=admin)
    return body


async def test_a_day_not_built_answers_from_the_counters_as_its_build_will(app, gql, admin):
    # given: the fixture's records, folded, no build
    await load_fixture(gql, admin)
    await fold(app)
    # when
    provisional = await read(gql, admin, KPIS)
    live_teams = await read(gql, admin, AGGREGATES)
    live_ranking = await read(gql, admin, RANKING)
    assert "errors" not in await build(gql, admin)
    final = await read(gql, admin, KPIS)
    built_teams = await read(gql, admin, AGGREGATES)
    built_ranking = await read(gql, admin, RANKING)
    # then: the same figures, provisional before the build and final after it
    assert provisional["kpis"]["final"] is False and final["kpis"]["final"] is True
    assert figures(provisional["kpis"]) == figures(final["kpis"])
    assert provisional["kpis"]["versionContext"] == final["kpis"]["versionContext"]
    assert [row | {"final": True} for row in live_teams["aggregates"]] == built_teams["aggregates"]
    assert {row["final"] for row in live_teams["aggregates"]} == {False}
    assert live_ranking == built_ranking


async def test_a_late_record_makes_a_built_day_stale_until_a_rebuild(app, gql, admin):
    # given: D1 built (u_kr3 did not log in that day)
    await load_fixture(gql, admin)
    assert "errors" not in await build(gql, admin)
    before = await read(gql, admin, KPIS)
    # when: a late login of u_kr3 on D1 arrives and is folded
    late = await gql(LOG_EVENTS, {"records": [event("u_kr3", f"{D1}T23:00:00+00:00", "login")]}, as_=admin)
    assert late["data"]["logEvents"]["accepted"] == 1
    await fold(app)
    stale = await read(gql, admin, KPIS)
    rebuilt = await build(gql, admin, rebuild=True)
    current = await read(gql, admin, KPIS)
    # then: the built figures stay, marked stale; the rebuild counts the late login
    assert before["kpis"]["stale"] is False
    assert stale["kpis"]["stale"] is True and stale["kpis"]["final"] is True
    assert stale["kpis"]["activeUsers"] == before["kpis"]["activeUsers"] == {"value": 4}
    assert "errors" not in rebuilt, rebuilt
    assert current["kpis"]["stale"] is False and current["kpis"]["activeUsers"] == {"value": 5}


async def test_a_rebuild_that_disagrees_with_the_counters_is_an_agg_conflict(app, gql, admin):
    # given: D1 built, then its counters drift (written behind the deriver's back)
    await load_fixture(gql, admin)
    assert "errors" not in await build(gql, admin)
    async with app.state.db.transaction() as session:
        u = LIVE_USER_DAY.c
        await session.execute(
            sa.update(LIVE_USER_DAY)
            .where(u.user_id == "u_kr1", u.day == date.fromisoformat(D1))
            .values(module_started=u.module_started + 1)
        )
    # when
    body = await build(gql, admin, rebuild=True)
    # then: refused, and the day is as it was
    assert error_codes(body) == ["E_AGG_CONFLICT"]
    assert (await read(gql, admin, KPIS))["kpis"]["moduleCompletionRate"]["denominator"] == 5


async def test_a_first_build_whose_path_sums_disagree_with_the_counters_is_an_agg_conflict(app, gql, admin):
    # given: D1 folded, then one of its per-path sums drifts (written behind the deriver's back)
    await load_fixture(gql, admin)
    await fold(app)
    async with app.state.db.transaction() as session:
        p = LIVE_PATH_DAY.c
        changed = await session.execute(
            sa.update(LIVE_PATH_DAY)
            .where(p.team_id == "t_seoul_a", p.day == date.fromisoformat(D1))
            .values(quiz_passed=p.quiz_passed + 1)
        )
        assert changed.rowcount == 1
    # when: the day is finalised from the counters (aggregates from the path sums)
    body = await build(gql, admin)
    # then: the build's check refuses it, and nothing was built
    assert error_codes(body) == ["E_AGG_CONFLICT"]
    assert body["errors"][0]["extensions"]["levels"] == ["paths", "region", "country", "branch", "team"]
    assert (await read(gql, admin, KPIS))["kpis"]["final"] is False


async def test_a_new_pass_threshold_recounts_days_not_built_and_leaves_built_days_to_a_rebuild(
    app, gql, admin, client_with, token
):
    # given: D1 counted with 0.7 (u_kr1's 7/10 passes, u_kr2's 6/10 does not)
    await load_fixture(gql, admin)
    await fold(app, 0.7)
    at_07 = (await read(gql, admin, KPIS))["kpis"]["quizPassRate"]
    # when: a deriver runs with 0.6
    await fold(app, 0.6)
    at_06 = (await read(gql, admin, KPIS))["kpis"]["quizPassRate"]
    # and an app with 0.6 builds the day, after which a 0.7 deriver runs again
    other = await client_with(quiz_pass_threshold=0.6)
    built = await other.post(
        "/graphql",
        json={"query": BUILD, "variables": {"date": D1, "rebuild": False}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert "errors" not in built.json(), built.json()
    await fold(app, 0.7)
    kept = (await read(gql, admin, KPIS))["kpis"]["quizPassRate"]
    # and the 0.7 app rebuilds it (audited)
    rebuilt = await build(gql, admin, rebuild=True)
    recounted = (await read(gql, admin, KPIS))["kpis"]["quizPassRate"]
    # then: not built -> counted again at once; built -> kept until the rebuild, which recounts
    assert (at_07["numerator"], at_07["denominator"]) == (1, 3)
    assert (at_06["numerator"], at_06["denominator"]) == (2, 3)
    assert (kept["numerator"], kept["denominator"]) == (2, 3)
    assert "errors" not in rebuilt, rebuilt
    assert (recounted["numerator"], recounted["denominator"]) == (1, 3)
