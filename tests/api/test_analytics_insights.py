"""insightsInput: the §5 payload for one user and UTC day, always with version and scope."""

from __future__ import annotations

from tests.analytics_fixture import D1, D2, load_fixture

BUILD = "mutation($date: Date!) { buildSnapshots(date: $date) { snapshots } }"
INSIGHTS = """
fragment LogV on LogVersion { moduleVersion scenarioVersion promptVersion }
query($userId: ID!, $date: Date!) {
  insightsInput(userId: $userId, date: $date) {
    userId date
    userPerformanceSnapshot { xpTotal badgesOwned quizPassed }
    saleslabSessionLogs {
      engine endTime summary { turnCount correctAnswers upsellAttempts upsellSuccess } version { ...LogV }
    }
    quizPerformanceLog { turnCount correctAnswers score passed version { ...LogV } }
    upsellMetrics { saleslabSessions attemptedSessions successfulSessions upsellAttempts successRate }
    versionContext { moduleVersion scenarioVersion promptVersion }
    scopeContext { regionId countryId branchId teamId }
  }
}
"""
V1 = {"moduleVersion": "m1.0", "scenarioVersion": "s1.0", "promptVersion": "p1.0"}


async def test_the_payload_of_a_built_day(gql, admin):
    # given
    await load_fixture(gql, admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    # when
    body = await gql(INSIGHTS, {"userId": "u_kr1", "date": D1}, as_=admin)
    # then
    assert body["data"]["insightsInput"] == {
        "userId": "u_kr1",
        "date": D1,
        "userPerformanceSnapshot": {"xpTotal": 100, "badgesOwned": ["starter"], "quizPassed": 1},
        "saleslabSessionLogs": [
            {
                "engine": "saleslab",
                "endTime": f"{D1}T11:00:00+00:00",
                "summary": {
                    "turnCount": 8,
                    "correctAnswers": None,
                    "upsellAttempts": 2,
                    "upsellSuccess": True,
                },
                "version": {"moduleVersion": "m1.0", "scenarioVersion": "s2.0", "promptVersion": "p2.0"},
            }
        ],
        "quizPerformanceLog": [
            {"turnCount": 10, "correctAnswers": 7, "score": 0.7, "passed": True, "version": V1},
        ],
        "upsellMetrics": {
            "saleslabSessions": 1,
            "attemptedSessions": 1,
            "successfulSessions": 1,
            "upsellAttempts": 2,
            "successRate": 1.0,
        },
        # the snapshot's: the latest record that day
        "versionContext": {"moduleVersion": "m1.0", "scenarioVersion": "s2.0", "promptVersion": "p2.0"},
        "scopeContext": {
            "regionId": "r_apac",
            "countryId": "c_kr",
            "branchId": "b_seoul",
            "teamId": "t_seoul_a",
        },
    }


async def test_failed_quizzes_and_unattempted_upsells(gql, admin):
    # given
    await load_fixture(gql, admin)
    assert "errors" not in await gql(BUILD, {"date": D1}, as_=admin)
    # when
    jp1 = (await gql(INSIGHTS, {"userId": "u_jp1", "date": D1}, as_=admin))["data"]["insightsInput"]
    kr3 = (await gql(INSIGHTS, {"userId": "u_kr3", "date": D1}, as_=admin))["data"]["insightsInput"]
    # then
    assert jp1["quizPerformanceLog"] == [
        {"turnCount": 0, "correctAnswers": 0, "score": None, "passed": False, "version": V1}
    ]
    assert kr3["upsellMetrics"] == {
        "saleslabSessions": 1,
        "attemptedSessions": 0,
        "successfulSessions": 0,
        "upsellAttempts": 0,
        "successRate": None,
    }


async def test_before_the_build_the_sessions_are_there_and_the_snapshot_is_null(gql, admin):
    # given: logs of D2, not built
    await load_fixture(gql, admin)
    # when
    body = await gql(INSIGHTS, {"userId": "u_jp1", "date": D2}, as_=admin)
    # then
    payload = body["data"]["insightsInput"]
    assert payload["userPerformanceSnapshot"] is None
    assert payload["quizPerformanceLog"] == [
        {"turnCount": 5, "correctAnswers": 5, "score": 1.0, "passed": True, "version": V1}
    ]
    assert payload["versionContext"] == V1  # the latest session's
    assert payload["scopeContext"]["teamId"] == "t_tokyo_a"
