"""UPM logging (upm §2.1-5.1): the spec's payloads, value checks, idempotency, one source of truth."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.conftest import error_codes
from tests.org import register_org
from tests.upm_fixture import (
    LEARNING,
    LOG_LEARNING,
    LOG_MISSION,
    LOG_QUIZ,
    LOG_SCENARIO,
    MISSION,
    QUIZ,
    SCENARIO,
    SEOUL,
    SUMMARY,
    with_context,
)

SESSIONS = """query($u: String) { sessions(userId: $u, first: 50) {
  nodes { sessionId engine summary { turnCount correctAnswers upsellAttempts upsellSuccess } } } }"""
EVENTS = (
    "query($u: String) { events(userId: $u, first: 50) { nodes { eventType context { moduleId action } } } }"
)
USER = "query($id: ID!) { user(id: $id) { userId scope { branchId teamId } } }"


@pytest.fixture
def engine(token):
    return token("engine", sub="upm-engine")


@pytest.mark.parametrize(
    ("mutation", "payload", "field"),
    [
        (LOG_SCENARIO, SCENARIO, "logScenario"),
        (LOG_QUIZ, QUIZ, "logQuiz"),
        (LOG_LEARNING, LEARNING, "logLearning"),
        (LOG_MISSION, MISSION, "logMission"),
    ],
)
async def test_the_specs_seed_payloads_are_accepted(gql, engine, mutation, payload, field):
    # when
    body = await gql(mutation, {"input": with_context(payload)}, as_=engine)
    # then
    assert "errors" not in body, body
    assert body["data"][field]["userId"] == "u_01"
    assert body["data"][field]["duplicate"] is False


async def test_an_accepted_log_lands_in_the_data_layer_and_registers_the_user(gql, engine, admin):
    # when
    await gql(LOG_SCENARIO, {"input": with_context(SCENARIO)}, as_=engine)
    await gql(LOG_QUIZ, {"input": with_context(QUIZ)}, as_=engine)
    await gql(LOG_LEARNING, {"input": with_context(LEARNING)}, as_=engine)
    await gql(LOG_MISSION, {"input": with_context(MISSION)}, as_=engine)
    # then
    sessions = (await gql(SESSIONS, {"u": "u_01"}, as_=admin))["data"]["sessions"]["nodes"]
    events = (await gql(EVENTS, {"u": "u_01"}, as_=admin))["data"]["events"]["nodes"]
    user = (await gql(USER, {"id": "u_01"}, as_=admin))["data"]["user"]
    assert sorted(s["engine"] for s in sessions) == ["learning", "quiz", "saleslab"]
    saleslab = next(s for s in sessions if s["engine"] == "saleslab")
    assert saleslab["summary"] == {
        "turnCount": 13,
        "correctAnswers": None,
        "upsellAttempts": 1,
        "upsellSuccess": True,
    }
    quiz = next(s for s in sessions if s["engine"] == "quiz")
    assert quiz["summary"]["turnCount"] == 10 and quiz["summary"]["correctAnswers"] == 7
    assert sorted(e["eventType"] for e in events) == ["mission_complete", "module_complete", "module_start"]
    assert user == {"userId": "u_01", "scope": {"branchId": "b_seoul", "teamId": "t_seoul_a"}}


AUDIT = "{ auditLog(first: 50) { nodes { action target actorRole before after } } auditVerify { ok } }"


async def test_registration_through_a_log_and_a_move_are_audited(gql, engine, admin):
    # when: u_01 first logs in Seoul, then in Busan
    from tests.upm_fixture import BUSAN

    await gql(LOG_QUIZ, {"input": with_context(QUIZ)}, as_=engine)
    await gql(LOG_QUIZ, {"input": with_context(QUIZ)}, as_=engine)  # same scope: no change
    await gql(LOG_QUIZ, {"input": with_context(QUIZ, scope=BUSAN)}, as_=engine)
    # then
    body = await gql(AUDIT, as_=admin)
    entries = [e for e in body["data"]["auditLog"]["nodes"] if e["target"] == "user:u_01"]
    assert [(e["action"], e["actorRole"]) for e in entries] == [("register_user", "engine")] * 2
    assert {e["after"]["scope"]["branchId"] for e in entries} == {"b_seoul", "b_busan"}
    assert body["data"]["auditVerify"]["ok"] is True
    user = (await gql(USER, {"id": "u_01"}, as_=admin))["data"]["user"]
    assert user["scope"]["branchId"] == "b_busan"


class AnotherWorkerRegisters:
    """Adds u_01 in Seoul, committed as far as the app can tell, just before the app's own
    INSERT of it, every time: another worker's first log of the same new user, landing
    between this one's look-up and its insert."""

    SQL = (
        "INSERT INTO users (user_id, name, region_id, country_id, branch_id, team_id, created_at,"
        " updated_at) VALUES ('u_01', 'u_01', 'r_apac', 'c_kr', 'b_seoul', 't_seoul_a',"
        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )

    def __call__(self, _conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO users"):
            cursor.execute(self.SQL)


async def test_a_new_user_registered_meanwhile_by_another_worker_is_moved_not_an_error(
    app, gql, engine, admin
):
    # given: another worker adds u_01 in Seoul while this one records its first log, in Busan
    from sqlalchemy import event

    from tests.upm_fixture import BUSAN

    writer = app.state.db.writer
    target = writer.sync_engine or writer.async_engine.sync_engine
    hook = AnotherWorkerRegisters()
    event.listen(target, "before_cursor_execute", hook)
    try:
        # when
        body = await gql(LOG_QUIZ, {"input": with_context(QUIZ, scope=BUSAN)}, as_=engine)
    finally:
        event.remove(target, "before_cursor_execute", hook)
    # then: accepted, and the user moved from where the other worker put it, audited as a move
    assert "errors" not in body, body
    user = (await gql(USER, {"id": "u_01"}, as_=admin))["data"]["user"]
    assert user["scope"]["branchId"] == "b_busan"
    audit = await gql(AUDIT, as_=admin)
    entries = [e for e in audit["data"]["auditLog"]["nodes"] if e["target"] == "user:u_01"]
    assert [(e["before"]["scope"]["branchId"], e["after"]["scope"]["branchId"]) for e in entries] == [
        ("b_seoul", "b_busan")
    ]


async def test_an_admin_registering_a_user_another_worker_just_added_updates_it(app, gql, admin):
    # given: another worker adds u_01 in Seoul while an admin registers it in Busan
    from sqlalchemy import event

    from tests.org import REGISTER_USER

    target = app.state.db.engine.sync_engine
    hook = AnotherWorkerRegisters()
    event.listen(target, "before_cursor_execute", hook)
    scope = {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_busan", "teamId": "t_busan_a"}
    try:
        # when
        body = await gql(
            REGISTER_USER, {"input": {"userId": "u_01", "name": "Mina", "scope": scope}}, as_=admin
        )
    finally:
        event.remove(target, "before_cursor_execute", hook)
    # then: the registration wins, and its audit entry shows what it replaced
    assert "errors" not in body, body
    assert body["data"]["registerUser"]["name"] == "Mina"
    assert body["data"]["registerUser"]["scope"] == scope
    audit = await gql(AUDIT, as_=admin)
    entries = [e for e in audit["data"]["auditLog"]["nodes"] if e["target"] == "user:u_01"]
    assert [(e["before"]["branchId"], e["after"]["branchId"]) for e in entries] == [("b_seoul", "b_busan")]


class Deadlocks:
    """The first ``times`` INSERTs of a user fail as PostgreSQL's deadlock victim does (a
    statement that raises its error code is sent in their place)."""

    SQL = "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01'; END $$"

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> Any:
        if statement.startswith("INSERT INTO users") and self.times:
            self.times -= 1
            return self.SQL, ()
        return statement, parameters


async def test_a_log_that_loses_a_deadlock_is_run_again_not_refused(app, database_url, gql, engine, admin):
    if not database_url.startswith("postgresql"):
        pytest.skip("deadlocks between workers are PostgreSQL's (SQLite runs one worker)")
    # given: the batch and then the unit alone each lose a deadlock once
    from sqlalchemy import event

    target = app.state.db.writer.async_engine.sync_engine
    hook = Deadlocks(times=2)
    event.listen(target, "before_cursor_execute", hook, retval=True)
    try:
        # when
        body = await gql(LOG_QUIZ, {"input": with_context(QUIZ)}, as_=engine)
    finally:
        event.remove(target, "before_cursor_execute", hook)
    # then: accepted once, and the user registered
    assert hook.times == 0
    assert "errors" not in body, body
    user = (await gql(USER, {"id": "u_01"}, as_=admin))["data"]["user"]
    assert user["scope"]["branchId"] == "b_seoul"


NOTHING_STORED = """query($u: String) {
  sessions(userId: $u, first: 5) { nodes { sessionId } }
  events(userId: $u, first: 5) { nodes { eventId } } }"""


async def assert_nothing_stored(gql, admin, user_id="u_01"):
    body = await gql(NOTHING_STORED, {"u": user_id}, as_=admin)
    assert body["data"]["sessions"]["nodes"] == [] and body["data"]["events"]["nodes"] == []
    assert error_codes(await gql(USER, {"id": user_id}, as_=admin)) == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("mutation", "payload", "change", "field"),
    [
        (LOG_SCENARIO, SCENARIO, {"turns": -1}, "turns"),
        (LOG_SCENARIO, SCENARIO, {"objections": -2}, "objections"),
        (LOG_SCENARIO, SCENARIO, {"behaviorScore": 1.5}, "behaviorScore"),
        (LOG_SCENARIO, SCENARIO, {"behaviorScore": -0.1}, "behaviorScore"),
        (LOG_SCENARIO, SCENARIO, {"userId": "no spaces allowed"}, "userId"),
        (LOG_SCENARIO, SCENARIO, {"scenarioId": None}, "scenarioId"),
        (LOG_QUIZ, QUIZ, {"correct": 11}, "correct"),
        (LOG_QUIZ, QUIZ, {"total": 0, "correct": 0}, "total"),
        (LOG_QUIZ, QUIZ, {"correct": -1}, "correct"),
        (LOG_QUIZ, QUIZ, {"topic": ""}, "topic"),
        (LOG_LEARNING, LEARNING, {"durationMinutes": -5}, "durationMinutes"),
        (LOG_LEARNING, LEARNING, {"completed": None}, "completed"),
        (LOG_MISSION, MISSION, {"score": 1.01}, "score"),
        (LOG_MISSION, MISSION, {"missionId": "x" * 200}, "missionId"),
    ],
)
async def test_values_are_checked_and_nothing_is_stored(gql, engine, admin, mutation, payload, change, field):
    # when
    body = await gql(mutation, {"input": with_context(payload | change)}, as_=engine)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert body["errors"][0]["extensions"]["field"] == field
    await assert_nothing_stored(gql, admin)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"scope": None}, "E_SCOPE_MISSING"),
        ({"scope": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul"}}, "E_SCOPE_MISSING"),
        ({"version": None}, "E_VERSION_MISSING"),
        ({"version": {"moduleVersion": "m", "scenarioVersion": "s"}}, "E_VERSION_MISSING"),
    ],
)
async def test_version_and_scope_are_required(gql, engine, admin, change, code):
    payload = with_context(SCENARIO) | change
    if payload["scope"] is None:
        del payload["scope"]
    if payload["version"] is None:
        del payload["version"]
    body = await gql(LOG_SCENARIO, {"input": payload}, as_=engine)
    assert error_codes(body) == [code]
    await assert_nothing_stored(gql, admin)


async def test_an_engine_bounded_to_a_branch_logs_only_there(gql, token, admin):
    busan_engine = token("engine", branch_id="b_busan")
    body = await gql(LOG_SCENARIO, {"input": with_context(SCENARIO)}, as_=busan_engine)
    assert error_codes(body) == ["E_OUT_OF_SCOPE"]
    await assert_nothing_stored(gql, admin)


BERLIN = {"regionId": "r_emea", "countryId": "c_de", "branchId": "b_berlin", "teamId": "t_berlin_a"}


async def test_a_bounded_engine_may_not_move_a_user_into_its_scope(gql, token, admin):
    # given: u_kr1 works in b_seoul (r_apac); an engine bound to r_emea
    await register_org(gql, admin)
    emea_engine = token("engine", region_id="r_emea")
    # when: it logs u_kr1 in Berlin
    body = await gql(LOG_SCENARIO, {"input": with_context(SCENARIO, BERLIN, userId="u_kr1")}, as_=emea_engine)
    # then: refused, and u_kr1 is still where the directory had them, with nothing logged
    assert error_codes(body) == ["E_OUT_OF_SCOPE"]
    user = await gql(USER, {"id": "u_kr1"}, as_=admin)
    assert user["data"]["user"]["scope"]["branchId"] == "b_seoul"
    sessions = await gql(SESSIONS, {"u": "u_kr1"}, as_=admin)
    assert sessions["data"]["sessions"]["nodes"] == []


async def test_a_bounded_engine_may_move_a_user_between_teams_inside_its_branch(gql, token, admin):
    # given
    await register_org(gql, admin)
    seoul_engine = token("engine", branch_id="b_seoul")
    other_team = {**SEOUL, "teamId": "t_seoul_b"}
    # when
    body = await gql(LOG_QUIZ, {"input": with_context(QUIZ, other_team, userId="u_kr1")}, as_=seoul_engine)
    # then
    assert "errors" not in body, body
    user = await gql(USER, {"id": "u_kr1"}, as_=admin)
    assert user["data"]["user"]["scope"]["teamId"] == "t_seoul_b"


@pytest.mark.parametrize("role", ["branch", "country", "region"])
async def test_operators_do_not_send_logs(gql, token, role):
    claims = {
        "branch": {"branch_id": "b_seoul"},
        "country": {"country_id": "c_kr"},
        "region": {"region_id": "r_apac"},
    }
    body = await gql(LOG_QUIZ, {"input": with_context(QUIZ)}, as_=token(role, **claims[role]))
    assert error_codes(body) == ["FORBIDDEN"]


async def test_a_retry_with_the_same_log_id_returns_the_first_answer_and_counts_once(gql, engine, admin):
    # given
    first = await gql(LOG_QUIZ, {"input": with_context(QUIZ, logId="retry-1")}, as_=engine)
    # when
    again = await gql(LOG_QUIZ, {"input": with_context(QUIZ, logId="retry-1")}, as_=engine)
    # then
    assert again["data"]["logQuiz"]["duplicate"] is True
    assert again["data"]["logQuiz"]["recordId"] == first["data"]["logQuiz"]["recordId"]
    assert again["data"]["logQuiz"]["skillDeltas"] == first["data"]["logQuiz"]["skillDeltas"]
    summary = (await gql(SUMMARY, {"userId": "u_01"}, as_=admin))["data"]["performanceSummary"]
    assert summary["quiz"]["totalQuizzes"] == 1
    sessions = (await gql(SESSIONS, {"u": "u_01"}, as_=admin))["data"]["sessions"]["nodes"]
    assert len(sessions) == 1


async def test_logs_without_a_log_id_each_get_their_own_uuid_and_session(gql, engine, admin):
    # when: the same quiz sent three times without a logId
    bodies = [await gql(LOG_QUIZ, {"input": with_context(QUIZ)}, as_=engine) for _ in range(3)]
    # then: three logs, three distinct version-4-shaped UUIDs, each the id of its raw session
    record_ids = [body["data"]["logQuiz"]["recordId"] for body in bodies]
    assert len(set(record_ids)) == 3
    assert all(uuid.UUID(record_id).version == 4 for record_id in record_ids)
    sessions = (await gql(SESSIONS, {"u": "u_01"}, as_=admin))["data"]["sessions"]["nodes"]
    assert sorted(s["sessionId"] for s in sessions) == sorted(record_ids)


async def test_a_log_id_reused_for_another_payload_is_refused(gql, engine, admin):
    await gql(LOG_QUIZ, {"input": with_context(QUIZ, logId="retry-2")}, as_=engine)
    body = await gql(LOG_QUIZ, {"input": with_context(QUIZ | {"correct": 3}, logId="retry-2")}, as_=engine)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    summary = (await gql(SUMMARY, {"userId": "u_01"}, as_=admin))["data"]["performanceSummary"]
    assert summary["quiz"]["totalQuizzes"] == 1 and summary["quiz"]["avgAccuracy"] == 0.7


async def test_concurrent_retries_of_one_log_count_once(gql, token, admin):
    # given: 20 engine instances all retrying the same log at once
    engines = [token("engine", sub=f"engine-{n}") for n in range(20)]
    payload = with_context(QUIZ, logId="burst-1")
    # when
    bodies = await asyncio.gather(*(gql(LOG_QUIZ, {"input": payload}, as_=engine) for engine in engines))
    # then: one accepted, the rest replay its answer
    answers = [body["data"]["logQuiz"] for body in bodies]
    assert len({answer["recordId"] for answer in answers}) == 1
    assert sorted(answer["duplicate"] for answer in answers) == [False] + [True] * 19
    summary = (await gql(SUMMARY, {"userId": "u_01"}, as_=admin))["data"]["performanceSummary"]
    assert summary["quiz"]["totalQuizzes"] == 1
