"""Reading the raw logs: `events`, `interactions`, `sessions` - filters, pages and scope."""

from __future__ import annotations

import pytest

from tests.conftest import error_codes
from tests.log_records import EVENTS, event, interaction, logged, session, stored_events
from tests.org import register_org

EVENT_IDS = """
query($userId: String, $scope: ScopeFilterInput) {
  events(userId: $userId, scope: $scope, first: 100) { edges { node { eventId } } }
}
"""
INTERACTIONS = """
query($userId: String, $engine: String, $sessionId: String, $from: DateTime, $to: DateTime) {
  interactions(userId: $userId, engine: $engine, sessionId: $sessionId, from: $from, to: $to) {
    nodes {
      interactionId sessionId timestamp userId engine input output
      metadata { difficultyLevel personaId traitActivation upsellTriggered }
      version { moduleVersion } scope { branchId } receivedAt sentBy
    }
  }
}
"""
SESSIONS = """
query($engine: String, $from: DateTime, $to: DateTime, $scope: ScopeFilterInput) {
  sessions(engine: $engine, from: $from, to: $to, scope: $scope) {
    nodes {
      sessionId userId engine startTime endTime durationSec outcome
      summary { turnCount correctAnswers upsellAttempts upsellSuccess }
      version { moduleVersion } scope { teamId } sentBy
    }
  }
}
"""
# One event per user of tests/org.py, in this order.
PER_USER = {"u_kr1": 1, "u_kr2": 2, "u_kr3": 3, "u_jp1": 4, "u_de1": 5}


@pytest.fixture
async def logs(gql, admin):
    """The organisation and one event per user, plus a login for u_kr1."""
    await register_org(gql, admin)
    records = [event(n, user=user) for user, n in PER_USER.items()]
    records.append(event(6, user="u_kr1", eventType="login", timestamp="2026-03-03T08:00:00Z"))
    result = await logged(gql, admin, "events", records)
    assert result["accepted"] == 6


async def event_ids(gql, bearer, **variables):
    body = await gql(EVENT_IDS, variables, as_=bearer)
    assert "errors" not in body, body
    return [edge["node"]["eventId"] for edge in body["data"]["events"]["edges"]]


# --- scope ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "claims", "expected"),
    [
        ("admin", {}, ["ev-0001", "ev-0002", "ev-0003", "ev-0004", "ev-0005", "ev-0006"]),
        ("region", {"region_id": "r_apac"}, ["ev-0001", "ev-0002", "ev-0003", "ev-0004", "ev-0006"]),
        ("country", {"country_id": "c_kr"}, ["ev-0001", "ev-0002", "ev-0003", "ev-0006"]),
        ("branch", {"branch_id": "b_seoul"}, ["ev-0001", "ev-0002", "ev-0006"]),
    ],
)
async def test_operators_read_only_their_scope(gql, token, logs, role, claims, expected):
    assert await event_ids(gql, token(role, **claims)) == expected


@pytest.mark.parametrize(
    ("role", "claims", "scope"),
    [
        ("branch", {"branch_id": "b_seoul"}, {"branchId": "b_busan"}),
        ("branch", {"branch_id": "b_seoul"}, {"regionId": "r_emea"}),
        ("country", {"country_id": "c_kr"}, {"countryId": "c_jp"}),
        ("country", {"country_id": "c_kr"}, {"branchId": "b_tokyo"}),
        ("region", {"region_id": "r_apac"}, {"teamId": "t_berlin_a"}),
    ],
)
async def test_a_scope_filter_outside_ones_scope_is_forbidden(gql, token, logs, role, claims, scope):
    # when
    body = await gql(EVENT_IDS, {"scope": scope}, as_=token(role, **claims))
    # then: refused, not an empty list
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None


async def test_a_finer_filter_inside_ones_scope_narrows_the_list(gql, token, logs):
    country = token("country", country_id="c_kr")
    assert await event_ids(gql, country, scope={"branchId": "b_busan"}) == ["ev-0003"]


@pytest.mark.parametrize("user_id", ["u_kr3", "u_nobody"])
async def test_a_user_outside_ones_scope_is_forbidden_whether_or_not_it_exists(gql, token, logs, user_id):
    # when
    body = await gql(EVENT_IDS, {"userId": user_id}, as_=token("branch", branch_id="b_seoul"))
    # then
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "not in your scope"


async def test_a_user_inside_ones_scope_is_read(gql, token, logs):
    branch = token("branch", branch_id="b_seoul")
    assert await event_ids(gql, branch, userId="u_kr1") == ["ev-0001", "ev-0006"]


@pytest.mark.parametrize("query", [EVENT_IDS, INTERACTIONS, SESSIONS])
async def test_engines_do_not_read_raw_logs(gql, token, logs, query):
    body = await gql(query, {}, as_=token("engine"))
    assert error_codes(body) == ["FORBIDDEN"]


# --- filters and pages ------------------------------------------------------------------------


async def test_events_are_filtered_by_type_and_time(gql, admin, logs):
    # when
    logins = await stored_events(gql, admin, eventType="login")
    on_march_2 = await stored_events(
        gql, admin, **{"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    )
    from_seoul_morning = await stored_events(gql, admin, **{"from": "2026-03-03T17:00:00+09:00"})
    # then
    assert [e["eventId"] for e in logins] == ["ev-0006"]
    assert [e["eventId"] for e in on_march_2] == ["ev-0001", "ev-0002", "ev-0003", "ev-0004", "ev-0005"]
    assert [e["eventId"] for e in from_seoul_morning] == ["ev-0006"]


async def test_pages_follow_the_cursor_without_gaps(gql, admin, logs):
    # when
    seen, after, pages = [], None, 0
    while True:
        body = await gql(EVENTS, {"first": 4, "after": after}, as_=admin)
        connection = body["data"]["events"]
        seen += [edge["node"]["eventId"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    # then
    assert pages == 2
    assert seen == ["ev-0001", "ev-0002", "ev-0003", "ev-0004", "ev-0005", "ev-0006"]


@pytest.mark.parametrize(
    "variables",
    [{"after": "not-a-cursor"}, {"first": 0}, {"first": 101}, {"from": "2026-03-02T00:00:00"}],
)
async def test_bad_read_arguments_are_schema_mismatches(gql, admin, logs, variables):
    body = await gql(EVENTS, {"first": 10, **variables}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_interactions_read_back_with_their_metadata(gql, admin, token):
    # given
    engine = token("engine", sub="saleslab-engine")
    await logged(
        gql, engine, "interactions", [interaction(1), interaction(2, sessionId="ss-0002", engine="quiz")]
    )
    # when
    body = await gql(INTERACTIONS, {"sessionId": "ss-0001"}, as_=admin)
    by_engine = await gql(INTERACTIONS, {"engine": "quiz"}, as_=admin)
    # then
    [stored] = body["data"]["interactions"]["nodes"]
    assert stored == {
        "interactionId": "ia-0001",
        "sessionId": "ss-0001",
        "timestamp": "2026-03-02T10:01:00+00:00",
        "userId": "u_kr1",
        "engine": "saleslab",
        "input": "Do you have this in blue?",
        "output": "We do, and the matching scarf is on offer.",
        "metadata": {
            "difficultyLevel": 2.0,
            "personaId": "p_bargain_hunter",
            "traitActivation": ["price_sensitive"],
            "upsellTriggered": True,
        },
        "version": {"moduleVersion": "mod-1.2.0"},
        "scope": {"branchId": "b_seoul"},
        "receivedAt": stored["receivedAt"],
        "sentBy": "saleslab-engine",
    }
    assert [n["interactionId"] for n in by_engine["data"]["interactions"]["nodes"]] == ["ia-0002"]


async def test_sessions_are_filtered_by_engine_end_time_and_scope(gql, admin, token):
    # given: sessions ending at 10:11, 10:12 and 10:13 UTC
    await register_org(gql, admin)
    await logged(
        gql,
        admin,
        "sessions",
        [session(1), session(2, engine="quiz", outcome=None), session(3, user="u_kr3")],
    )
    branch = token("branch", branch_id="b_seoul")
    # when
    quiz = await gql(SESSIONS, {"engine": "quiz"}, as_=admin)
    late = await gql(SESSIONS, {"from": "2026-03-02T10:12:00Z"}, as_=admin)
    mine = await gql(SESSIONS, {}, as_=branch)
    other = await gql(SESSIONS, {"scope": {"branchId": "b_busan"}}, as_=branch)
    # then
    [quiz_session] = quiz["data"]["sessions"]["nodes"]
    assert quiz_session["summary"] == {
        "turnCount": 8,
        "correctAnswers": None,
        "upsellAttempts": 2,
        "upsellSuccess": True,
    }
    assert (quiz_session["outcome"], quiz_session["durationSec"]) == (None, 600.0)
    assert quiz_session["endTime"] == "2026-03-02T10:12:00+00:00"
    assert [n["sessionId"] for n in late["data"]["sessions"]["nodes"]] == ["ss-0002", "ss-0003"]
    assert [n["sessionId"] for n in mine["data"]["sessions"]["nodes"]] == ["ss-0001", "ss-0002"]
    assert error_codes(other) == ["FORBIDDEN"]
