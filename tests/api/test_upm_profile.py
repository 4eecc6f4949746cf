"""The aggregated profile (upm §1, §7) and skill mastery (§6), computed by hand."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import error_codes
from tests.upm_fixture import (
    BUSAN,
    LOG_LEARNING,
    LOG_MISSION,
    LOG_QUIZ,
    LOG_SCENARIO,
    PERFORMANCE_FIELDS,
    SUMMARY,
    with_context,
)

UPDATE_SKILL = "mutation($input: SkillUpdateInput!) { updateSkill(input: $input) { skillId mastery } }"
PAGE = f"""query($first: Int!) {{
  users(first: $first) {{ nodes {{ userId performance {{ {PERFORMANCE_FIELDS} }} }} }}
}}"""
PAGE_SHAPES = {
    "nodes": PAGE,
    "edges": f"""query($first: Int!) {{
  users(first: $first) {{ edges {{ node {{ userId performance {{ {PERFORMANCE_FIELDS} }} }} }} }}
}}""",
    "fragment": f"""query($first: Int!) {{ users(first: $first) {{ ...Page }} }}
fragment Page on UserConnection {{ nodes {{ ... on User {{ userId ...Perf }} }} }}
fragment Perf on User {{ performance {{ {PERFORMANCE_FIELDS} }} }}""",
    "aliased": f"""query($first: Int!) {{
  users(first: $first) {{ nodes {{ userId p: performance {{ {PERFORMANCE_FIELDS} }} }} }}
}}""",
}
ONE_USER = f"""query($id: ID!) {{ user(id: $id) {{ performance {{ {PERFORMANCE_FIELDS} }} }} }}"""
SUMMARIES = """query($u: String!) {
  scenarioSummary(userId: $u) { totalSessions }
  quizSummary(userId: $u) { totalQuizzes }
  learningSummary(userId: $u) { completedModules }
  missionSummary(userId: $u) { completed }
  skillSummary(userId: $u) { upsell }
}"""


def scenario(turns, upsell, objections, score, user="u_01"):
    return {
        "userId": user,
        "scenarioId": "sc_1",
        "turns": turns,
        "upsellSuccess": upsell,
        "objections": objections,
        "behaviorScore": score,
    }


def quiz(topic, correct, total=10, user="u_01"):
    return {
        "userId": user,
        "quizId": "q",
        "correct": correct,
        "total": total,
        "topic": topic,
        "difficulty": 2,
    }


def learning(module, minutes, completed):
    return {"userId": "u_01", "moduleId": module, "durationMinutes": minutes, "completed": completed}


def mission(mission_id, success, score):
    return {"userId": "u_01", "missionId": mission_id, "success": success, "score": score}


async def send(gql, bearer, mutation, payload, **extra):
    body = await gql(mutation, {"input": with_context(payload, **extra)}, as_=bearer)
    assert "errors" not in body, body
    return body


async def test_profile_matches_the_figures_computed_by_hand(gql, token, admin):
    # given: the default UPM ruleset (ema alpha .3, minTurns 3, weights engine .6 / upsell .25 /
    # objection .15; strength >= .8, weakness < .5, 2 quizzes at least)
    engine = token("engine")
    for payload in [scenario(13, True, 2, 0.71), scenario(2, False, 0, 0.9), scenario(10, False, 1, 0.5)]:
        await send(gql, engine, LOG_SCENARIO, payload)
    for topic, correct in [
        ("oled_basics", 7),
        ("oled_basics", 9),
        ("sound_features", 2),
        ("sound_features", 4),
        ("brightness", 10),
    ]:
        await send(gql, engine, LOG_QUIZ, quiz(topic, correct))
    for module, minutes, completed in [("m_22", 14, True), ("m_22", 10, True), ("m_23", 5, False)]:
        await send(gql, engine, LOG_LEARNING, learning(module, minutes, completed))
    for mission_id, success, score in [
        ("mission_10", True, 0.83),
        ("mission_11", False, 0.4),
        ("mission_12", False, 0.2),
        ("mission_12", True, 0.9),
    ]:
        await send(gql, engine, LOG_MISSION, mission(mission_id, success, score))
    # when
    summary = (await gql(SUMMARY, {"userId": "u_01"}, as_=admin))["data"]["performanceSummary"]
    # then
    # session scores: .6*.71 + .25 + .15/3 = .726; the 2-turn session is too short; .6*.5 + 0 + .15/2 = .375
    # EMA: .726, then .3*.375 + .7*.726 = .6207
    assert summary["scenario"] == {
        "totalSessions": 3,
        "avgTurns": pytest.approx(25 / 3),
        "upsellSuccessRate": pytest.approx(1 / 3),
        "avgObjections": pytest.approx(1.0),
        "behaviorScore": pytest.approx(0.6207),
    }
    # accuracies .7 .9 .2 .4 1.0 -> mean .64; oled 16/20 = .8 strength, sound 6/20 = .3 weakness,
    # brightness has one quiz only
    assert summary["quiz"] == {
        "totalQuizzes": 5,
        "avgAccuracy": pytest.approx(0.64),
        "strengths": ["oled_basics"],
        "weaknesses": ["sound_features"],
    }
    # m_22 completed (twice: one repeat), m_23 not; engagement .6*2/3 + .4*min(1, 29/45)
    assert summary["learning"] == {
        "completedModules": 1,
        "repeatCount": 1,
        "engagementScore": pytest.approx(0.4 + 0.4 * 29 / 45),
    }
    # mission_11 failed and was never passed: active; mission_12 failed, then passed
    assert summary["missions"] == {"completed": 2, "failed": 2, "active": 1}
    # upsell: .05*.726 + .05*.375 + .01*2 + .03*.83 + .03*.9
    # objection_handling: .04*.726 + .04*.375 + .01*2 + .02*.83 + .02*.9
    # product_knowledge: .01*.726 + .01*.375 + .05*(.7+.9+.2+.4+1) + .03*2 + .02*.83 + .02*.9
    assert summary["skill"]["upsell"] == pytest.approx(0.12695)
    assert summary["skill"]["objectionHandling"] == pytest.approx(0.09864)
    assert summary["skill"]["productKnowledge"] == pytest.approx(0.26561)
    assert [s["skillId"] for s in summary["skill"]["skills"]] == [
        "objection_handling",
        "product_knowledge",
        "upsell",
    ]
    assert summary["updatedAt"] > 1_700_000_000


async def test_a_user_without_logs_has_an_empty_profile(gql, admin):
    await gql(
        'mutation { registerUser(input: {userId: "u_new", name: "N", scope: {regionId: "r", '
        'countryId: "c", branchId: "b", teamId: "t"}}) { userId } }',
        as_=admin,
    )
    summary = (await gql(SUMMARY, {"userId": "u_new"}, as_=admin))["data"]["performanceSummary"]
    assert summary["scenario"] == {
        "totalSessions": 0,
        "avgTurns": None,
        "upsellSuccessRate": None,
        "avgObjections": None,
        "behaviorScore": None,
    }
    assert summary["skill"]["upsell"] == 0.0 and summary["updatedAt"] is None


async def test_concurrent_logs_for_one_user_lose_no_update(gql, token, admin):
    # given: 20 engine instances (each within its own rate and concurrency limits)
    engines = [token("engine", sub=f"quiz-engine-{n}") for n in range(20)]
    # when: 200 concurrent quiz logs for the same user and topic
    bodies = await asyncio.gather(
        *(
            gql(LOG_QUIZ, {"input": with_context(quiz("oled_basics", i % 11))}, as_=engines[i % 20])
            for i in range(200)
        )
    )
    # then: every one counted exactly once
    assert all("errors" not in body for body in bodies)
    summary = (await gql(SUMMARY, {"userId": "u_01"}, as_=admin))["data"]["performanceSummary"]
    assert summary["quiz"]["totalQuizzes"] == 200
    expected_accuracy = sum((i % 11) / 10 for i in range(200)) / 200
    assert summary["quiz"]["avgAccuracy"] == pytest.approx(expected_accuracy)
    assert summary["skill"]["productKnowledge"] == pytest.approx(
        min(1.0, sum(0.05 * (i % 11) / 10 for i in range(200)))
    )


async def test_update_skill_is_admin_only_and_clamped(gql, token, admin):
    # given
    await send(gql, token("engine"), LOG_QUIZ, quiz("oled_basics", 10))  # product_knowledge .05
    change = {"userId": "u_01", "skillId": "product_knowledge", "delta": -0.5, "source": "quiz"}
    # when
    by_engine = await gql(UPDATE_SKILL, {"input": change}, as_=token("engine"))
    by_branch = await gql(UPDATE_SKILL, {"input": change}, as_=token("branch", branch_id="b_seoul"))
    down = await gql(UPDATE_SKILL, {"input": change}, as_=admin)
    up = await gql(UPDATE_SKILL, {"input": change | {"delta": 1.0}}, as_=admin)
    up_again = await gql(UPDATE_SKILL, {"input": change | {"delta": 0.5}}, as_=admin)
    # then
    assert error_codes(by_engine) == ["FORBIDDEN"] and error_codes(by_branch) == ["FORBIDDEN"]
    assert down["data"]["updateSkill"]["mastery"] == 0.0
    assert up["data"]["updateSkill"]["mastery"] == 1.0
    assert up_again["data"]["updateSkill"]["mastery"] == 1.0


@pytest.mark.parametrize(
    ("change", "field"),
    [({"skillId": "charisma"}, "skillId"), ({"source": "magic"}, "source"), ({"delta": 2.0}, "delta")],
)
async def test_update_skill_checks_its_values(gql, token, admin, change, field):
    await send(gql, token("engine"), LOG_QUIZ, quiz("oled_basics", 10))
    base = {"userId": "u_01", "skillId": "upsell", "delta": 0.1, "source": "scenario"}
    body = await gql(UPDATE_SKILL, {"input": base | change}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert body["errors"][0]["extensions"]["field"] == field


async def test_update_skill_for_an_unknown_user_is_not_found(gql, admin):
    base = {"userId": "u_ghost", "skillId": "upsell", "delta": 0.1, "source": "scenario"}
    assert error_codes(await gql(UPDATE_SKILL, {"input": base}, as_=admin)) == ["NOT_FOUND"]


async def test_update_skill_is_audited(gql, token, admin):
    await send(gql, token("engine"), LOG_QUIZ, quiz("oled_basics", 10))
    base = {"userId": "u_01", "skillId": "upsell", "delta": 0.25, "source": "scenario"}
    await gql(UPDATE_SKILL, {"input": base}, as_=admin)
    body = await gql(
        '{ auditLog(action: "update_skill", first: 5) { nodes { target before after } } }', as_=admin
    )
    [entry] = body["data"]["auditLog"]["nodes"]
    assert entry["target"] == "skill:u_01:upsell"
    assert entry["before"] == {"mastery": None} and entry["after"]["mastery"] == 0.25


@pytest.mark.parametrize(
    ("role", "claims", "allowed"),
    [
        ("admin", {}, True),
        ("region", {"region_id": "r_apac"}, True),
        ("country", {"country_id": "c_kr"}, True),
        ("branch", {"branch_id": "b_seoul"}, True),
        ("branch", {"branch_id": "b_busan"}, False),
        ("country", {"country_id": "c_jp"}, False),
        ("region", {"region_id": "r_emea"}, False),
        ("engine", {}, False),
    ],
)
async def test_summaries_follow_the_scope_rules(gql, token, role, claims, allowed):
    # given: u_01 sits in Seoul
    await send(gql, token("engine"), LOG_QUIZ, quiz("oled_basics", 10))
    # when
    body = await gql(SUMMARIES, {"u": "u_01"}, as_=token(role, **claims))
    # then: all five summaries, or FORBIDDEN (and no data at all)
    if allowed:
        assert "errors" not in body and body["data"]["quizSummary"]["totalQuizzes"] == 1
    else:
        assert set(error_codes(body)) == {"FORBIDDEN"} and body["data"] is None


async def test_a_page_of_users_with_performance_costs_a_constant_number_of_statements(
    gql, token, admin, sql_statements
):
    # given: 100 users with some history each (sent by an admin: engines are rate-limited)
    engine = admin
    for i in range(100):
        user = f"u_{i:03}"
        await send(gql, engine, LOG_QUIZ, quiz("oled_basics", i % 11, user=user))
        if i % 3 == 0:
            await send(gql, engine, LOG_SCENARIO, scenario(5, True, 1, 0.5, user=user))
    # when
    sql_statements.reset()
    await gql(PAGE, {"first": 10}, as_=admin)
    small_cost = sql_statements.count
    sql_statements.reset()
    page = await gql(PAGE, {"first": 100}, as_=admin)
    # then: the users, then profiles, topics, skills and module/mission counts: five statements
    assert len(page["data"]["users"]["nodes"]) == 100
    assert page["data"]["users"]["nodes"][3]["performance"]["scenario"]["totalSessions"] == 1
    assert sql_statements.count == small_cost == 5, sql_statements.statements


@pytest.mark.parametrize("shape", sorted(PAGE_SHAPES))
async def test_a_page_answers_each_users_own_performance_however_it_is_asked(gql, token, admin, shape):
    # given: three users with different histories
    engine = token("engine")
    for i in range(3):
        for _ in range(i + 1):
            await send(gql, engine, LOG_QUIZ, quiz("oled_basics", 3 * i, user=f"u_{i:03}"))
    # when: the page (prefetched when it asks for performance), and each user alone
    page = await gql(PAGE_SHAPES[shape], {"first": 10}, as_=admin)
    alone = [await gql(ONE_USER, {"id": f"u_{i:03}"}, as_=admin) for i in range(3)]
    # then: the same figures, user by user
    assert "errors" not in page, page
    users = page["data"]["users"]
    nodes = users["nodes"] if "nodes" in users else [edge["node"] for edge in users["edges"]]
    figures = [node.get("performance", node.get("p")) for node in nodes]
    assert figures == [body["data"]["user"]["performance"] for body in alone]
    assert [f["quiz"]["totalQuizzes"] for f in figures] == [1, 2, 3]


async def test_moving_a_user_keeps_the_profile(gql, token, admin):
    engine = token("engine")
    await send(gql, engine, LOG_QUIZ, quiz("oled_basics", 10))
    await send(gql, engine, LOG_QUIZ, quiz("oled_basics", 10), scope=BUSAN)
    busan = token("branch", branch_id="b_busan")
    seoul = token("branch", branch_id="b_seoul")
    assert (await gql(SUMMARY, {"userId": "u_01"}, as_=busan))["data"]["performanceSummary"]["quiz"][
        "totalQuizzes"
    ] == 2
    assert error_codes(await gql(SUMMARY, {"userId": "u_01"}, as_=seoul)) == ["FORBIDDEN"]
