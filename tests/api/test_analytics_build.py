"""buildSnapshots: admin only, one transaction, E_DUPLICATE_SNAPSHOT, audited rebuilds, and the CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from app.cli import main as cli_main
from app.services.analytics.tables import SNAPSHOTS
from app.settings import get_settings
from tests.analytics_fixture import D1, D2, LOG_SESSIONS, event, load_fixture, session
from tests.conftest import error_codes

BUILD = """
mutation($date: Date!, $rebuild: Boolean) {
  buildSnapshots(date: $date, rebuild: $rebuild) {
    date rebuilt snapshots regions countries branches teams builtBy laterDaysToRebuild
  }
}
"""
KPIS = """
query($date: Date!, $scope: ScopeFilterInput) {
  kpis(date: $date, scope: $scope) {
    activeUsers { value }
    moduleCompletionRate { value numerator denominator }
    quizPassRate { value }
  }
}
"""
SNAPSHOT = """
query($userId: ID!, $date: Date!) {
  insightsInput(userId: $userId, date: $date) {
    userPerformanceSnapshot {
      date userId loggedIn moduleStarted moduleCompleted quizCompleted quizPassed saleslabSessions
      upsellAttempts upsellSuccesses xpGained xpTotal badgesOwned
      version { latestModuleVersion latestScenarioVersion latestPromptVersion }
      scope { regionId countryId branchId teamId }
    }
  }
}
"""
LOG_EVENTS = """
mutation($records: [EventLogInput!]) { logEvents(records: $records) { accepted rejected } }
"""


async def snapshot_of(gql: Any, admin: str, user: str, day: str) -> dict[str, Any] | None:
    body = await gql(SNAPSHOT, {"userId": user, "date": day}, as_=admin)
    assert "errors" not in body, body
    result: dict[str, Any] | None = body["data"]["insightsInput"]["userPerformanceSnapshot"]
    return result


async def test_only_an_admin_builds_snapshots(gql, token):
    # when
    as_region = await gql(BUILD, {"date": D1}, as_=token("region", region_id="r_apac"))
    as_engine = await gql(BUILD, {"date": D1}, as_=token("engine"))
    anonymous = await gql(BUILD, {"date": D1})
    # then
    assert error_codes(as_region) == ["FORBIDDEN"]
    assert error_codes(as_engine) == ["FORBIDDEN"]
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_build_answers_what_it_built(gql, admin):
    # given
    await load_fixture(gql, admin)
    # when
    body = await gql(BUILD, {"date": D1}, as_=admin)
    # then: 5 users with records on D1, in 2 regions, 3 countries, 4 branches, 4 teams
    assert body["data"]["buildSnapshots"] == {
        "date": D1,
        "rebuilt": False,
        "snapshots": 5,
        "regions": 2,
        "countries": 3,
        "branches": 4,
        "teams": 4,
        "builtBy": "admin-test",
        "laterDaysToRebuild": [],
    }


async def test_snapshots_hold_the_day_and_the_cumulative_xp_and_badges(gql, admin):
    # given
    await load_fixture(gql, admin)
    for day in (D1, D2):
        assert "errors" not in await gql(BUILD, {"date": day}, as_=admin)
    # when
    d1 = await snapshot_of(gql, admin, "u_kr1", D1)
    d2 = await snapshot_of(gql, admin, "u_kr1", D2)
    # then
    assert d1 == {
        "date": D1,
        "userId": "u_kr1",
        "loggedIn": True,
        "moduleStarted": 2,
        "moduleCompleted": 1,
        "quizCompleted": 1,
        "quizPassed": 1,  # 7 / 10 = 0.7 reaches the 0.7 threshold
        "saleslabSessions": 1,
        "upsellAttempts": 1,
        "upsellSuccesses": 1,
        "xpGained": 100,
        "xpTotal": 100,
        "badgesOwned": ["starter"],
        # the latest record that day is the saleslab session ending 11:00
        "version": {
            "latestModuleVersion": "m1.0",
            "latestScenarioVersion": "s2.0",
            "latestPromptVersion": "p2.0",
        },
        "scope": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul", "teamId": "t_seoul_a"},
    }
    assert d2 is not None
    assert (d2["xpGained"], d2["xpTotal"]) == (20, 120)  # 100 carried from D1, + 20
    assert d2["badgesOwned"] == ["alpha", "starter"]  # the sorted union with D1's
    assert d2["version"]["latestModuleVersion"] == "m1.1"


async def test_the_latest_record_may_be_an_interaction_and_days_are_utc(gql, admin):
    # given
    await load_fixture(gql, admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    # when
    kr3 = await snapshot_of(gql, admin, "u_kr3", D1)
    jp1 = await snapshot_of(gql, admin, "u_jp1", D1)
    # then
    assert kr3 is not None and kr3["version"]["latestPromptVersion"] == "p3.0"  # the 12:00 interaction
    assert (kr3["loggedIn"], kr3["saleslabSessions"], kr3["upsellAttempts"]) == (False, 1, 0)
    assert jp1 is not None and jp1["loggedIn"] is True  # 00:30+09:00 on D2 is D1 in UTC
    assert (jp1["quizCompleted"], jp1["quizPassed"]) == (1, 0)  # a quiz of 0 questions does not pass


async def test_building_a_built_day_again_is_a_duplicate_and_changes_nothing(gql, admin):
    # given
    await load_fixture(gql, admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    # when
    body = await gql(BUILD, {"date": D1}, as_=admin)
    # then
    assert error_codes(body) == ["E_DUPLICATE_SNAPSHOT"]
    assert "rebuild" in body["errors"][0]["message"]
    kpis = await gql(KPIS, {"date": D1}, as_=admin)
    assert kpis["data"]["kpis"]["activeUsers"]["value"] == 4


async def test_snapshot_rows_written_by_hand_without_a_build_are_a_duplicate_too(gql, admin, app):
    # given: a snapshot row for D2 written behind the build's back (no build record), D1 built
    await load_fixture(gql, admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    async with app.state.db.transaction() as session:
        await session.execute(
            sa.insert(SNAPSHOTS).values(
                day=date.fromisoformat(D2),
                user_id="u_hand",
                logged_in=False,
                module_started=0,
                module_completed=0,
                quiz_completed=0,
                quiz_passed=0,
                saleslab_sessions=0,
                upsell_attempts=0,
                upsell_successes=0,
                xp_gained=0,
                xp_total=0,
                badges_owned=[],
                latest_at=datetime(2026, 3, 3, 12, tzinfo=UTC),
                region_id="r_apac",
                country_id="c_kr",
                branch_id="b_seoul",
                team_id="t_seoul_a",
            )
        )
    # when
    body = await gql(BUILD, {"date": D2}, as_=admin)
    # then: refused, and the hand-written row is left as it was
    assert error_codes(body) == ["E_DUPLICATE_SNAPSHOT"]
    async with app.state.db.session() as session:
        users = (
            await session.scalars(
                sa.select(SNAPSHOTS.c.user_id).where(SNAPSHOTS.c.day == date.fromisoformat(D2))
            )
        ).all()
    assert users == ["u_hand"]


REBUILDS = '{ auditLog(action: "rebuild_snapshots", first: 10) { nodes { actorSub target before after } } }'


async def test_a_rebuild_replaces_the_day_and_is_audited(gql, admin):
    # given: D1 built, then a late record for D1 arrives
    await load_fixture(gql, admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    late = [event("u_kr3", f"{D1}T13:00:00+00:00", "module_start")]
    assert (await gql(LOG_EVENTS, {"records": late}, as_=admin))["data"]["logEvents"]["accepted"] == 1
    # when
    body = await gql(BUILD, {"date": D1, "rebuild": True}, as_=admin)
    # then
    assert body["data"]["buildSnapshots"]["rebuilt"] is True
    assert body["data"]["buildSnapshots"]["snapshots"] == 5
    kpis = await gql(KPIS, {"date": D1, "scope": {"countryId": "c_kr"}}, as_=admin)
    # Korea: done 1+1+1 / started 2+2+(1+1)
    assert kpis["data"]["kpis"]["moduleCompletionRate"] == {"value": 0.5, "numerator": 3, "denominator": 6}
    [entry] = (await gql(REBUILDS, as_=admin))["data"]["auditLog"]["nodes"]
    assert entry["target"] == f"snapshot_daily_user/{D1}"
    assert entry["before"]["snapshots"] == 5
    assert entry["after"]["snapshots"] == 5
    assert entry["actorSub"] == "admin-test"


async def test_a_first_build_is_not_audited_and_a_rebuild_of_a_new_day_is_a_build(gql, admin):
    # given
    await load_fixture(gql, admin)
    # when
    body = await gql(BUILD, {"date": D1, "rebuild": True}, as_=admin)
    # then
    assert body["data"]["buildSnapshots"]["rebuilt"] is False
    assert (await gql(REBUILDS, as_=admin))["data"]["auditLog"]["nodes"] == []


async def test_rebuilding_an_earlier_day_names_the_later_days_to_rebuild(gql, admin):
    # given
    await load_fixture(gql, admin)
    for day in (D1, D2):
        assert "errors" not in await gql(BUILD, {"date": day}, as_=admin)
    # when
    body = await gql(BUILD, {"date": D1, "rebuild": True}, as_=admin)
    # then
    assert body["data"]["buildSnapshots"]["laterDaysToRebuild"] == [D2]


async def test_a_day_without_records_builds_empty_and_answers_null_rates(gql, admin):
    # when
    body = await gql(BUILD, {"date": "2026-01-01"}, as_=admin)
    kpis = await gql(KPIS, {"date": "2026-01-01"}, as_=admin)
    # then
    assert body["data"]["buildSnapshots"]["snapshots"] == 0
    assert kpis["data"]["kpis"] == {
        "activeUsers": {"value": 0},
        "moduleCompletionRate": {"value": None, "numerator": 0, "denominator": 0},
        "quizPassRate": {"value": None},
    }


async def test_a_future_day_cannot_be_built(gql, admin):
    # when
    body = await gql(BUILD, {"date": "2999-01-01"}, as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


def test_the_snapshot_command_builds_a_day_for_a_nightly_job(dbs, monkeypatch, capsys):
    # given: a migrated, empty database named by the environment
    url = dbs.empty_url()
    monkeypatch.setenv("TRAINER_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert cli_main(["migrate"]) == 0
        # when
        first = cli_main(["snapshot", "--date", D1])
        again = cli_main(["snapshot", "--date", D1])
        rebuilt = cli_main(["snapshot", "--date", D1, "--rebuild"])
        # then
        out = capsys.readouterr()
        assert (first, again, rebuilt) == (0, 1, 0)
        assert "E_DUPLICATE_SNAPSHOT" in out.err
        assert f"rebuilt {D1}" in out.out
    finally:
        get_settings.cache_clear()
        asyncio.run(dbs.drop(url))


async def test_ties_at_the_same_instant_go_to_events_then_to_the_first_stored(gql, admin):
    # given: at 12:00 sharp a session ends and two events are stored, m9.0 first, then m8.0
    at = f"{D1}T12:00:00+00:00"
    first = event("u_kr1", at, "module_start", version=("m9.0", "s1.0", "p1.0"))
    second = event("u_kr1", at, "module_complete", version=("m8.0", "s1.0", "p1.0"))
    tied = session("u_kr1", "quiz", at, turns=1, correct=1, version=("m7.0", "s1.0", "p1.0"))
    logged = await gql(LOG_EVENTS, {"records": [first, second]}, as_=admin)
    assert logged["data"]["logEvents"]["accepted"] == 2
    assert (await gql(LOG_SESSIONS, {"records": [tied]}, as_=admin))["data"]["logSessions"]["accepted"] == 1
    # when
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    snapshot = await snapshot_of(gql, admin, "u_kr1", D1)
    # then
    assert snapshot is not None
    assert snapshot["version"]["latestModuleVersion"] == "m9.0"
