"""logEvents / logInteractions / logSessions: the batch, who may send it, what is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import error_codes
from tests.log_records import FACTORIES, KINDS, SCOPES, event, logged, send, stored_events
from tests.org import register_org

BOTH_FORMS = """
mutation($records: [EventLogInput!], $json: JSON) {
  logEvents(records: $records, recordsJson: $json) { accepted }
}
"""
NEITHER_FORM = "mutation { logEvents { accepted } }"
JSON_OBJECT = "mutation($json: JSON) { logEvents(recordsJson: $json) { accepted } }"


# --- the batch as a whole ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("form", ["json", "typed"])
async def test_a_valid_batch_is_stored(gql, admin, kind, form):
    # given
    records = [FACTORIES[kind](n) for n in range(1, 4)]
    # when
    result = await logged(gql, admin, kind, records, form=form)
    # then
    assert result == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": 0,
        "skipped": 0,
        "statuses": ["ACCEPTED"] * 3,
        "errors": [],
    }


async def test_both_argument_forms_at_once_are_refused(gql, admin):
    # when
    body = await gql(BOTH_FORMS, {"records": [event(1)], "json": [event(2)]}, as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert await stored_events(gql, admin) == []


async def test_no_records_at_all_are_refused(gql, admin):
    body = await gql(NEITHER_FORM, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


@pytest.mark.parametrize("form", ["json", "typed"])
async def test_an_empty_batch_is_refused(gql, admin, form):
    body = await send(gql, admin, "events", [], form=form)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_records_json_must_be_a_list(gql, admin):
    body = await gql(JSON_OBJECT, {"json": event(1)}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


@pytest.mark.parametrize("settings_overrides", [{"max_batch_records": 3}])
@pytest.mark.parametrize("form", ["json", "typed"])
async def test_a_batch_over_the_maximum_is_refused_whole(gql, admin, form, settings_overrides):
    # given: a deployment that takes at most 3 records per call
    records = [event(n) for n in range(1, 5)]
    # when
    body = await send(gql, admin, "events", records, form=form, partial=True)
    # then: nothing is looked at, nothing is stored
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert body["errors"][0]["extensions"]["maxRecords"] == 3
    assert await stored_events(gql, admin) == []


# --- all-or-nothing and partial ---------------------------------------------------------------


async def test_by_default_one_bad_record_stores_nothing(gql, admin):
    # given
    records = [event(1), event(2, scope=None), event(3)]
    # when
    result = await logged(gql, admin, "events", records)
    # then: the statuses say which failed and that the others were not stored
    assert result["statuses"] == ["SKIPPED", "REJECTED", "SKIPPED"]
    assert (result["accepted"], result["rejected"], result["skipped"]) == (0, 1, 2)
    assert [(e["index"], e["id"], e["code"]) for e in result["errors"]] == [(1, "ev-0002", "E_SCOPE_MISSING")]
    assert await stored_events(gql, admin) == []


async def test_partial_stores_the_valid_records(gql, admin):
    # given
    records = [event(1), event(2, scope=None), event(3)]
    # when
    result = await logged(gql, admin, "events", records, partial=True)
    # then
    assert result["statuses"] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert [e["eventId"] for e in await stored_events(gql, admin)] == ["ev-0001", "ev-0003"]


async def test_a_rejected_batch_can_be_sent_again_once_fixed(gql, admin):
    # given: a batch refused because of one record
    await logged(gql, admin, "events", [event(1), event(2, eventType="nope")])
    # when: the fixed batch comes again
    result = await logged(gql, admin, "events", [event(1), event(2)])
    # then
    assert result["statuses"] == ["ACCEPTED", "ACCEPTED"]


# --- who may write ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "claims"),
    [
        ("region", {"region_id": "r_apac"}),
        ("country", {"country_id": "c_kr"}),
        ("branch", {"branch_id": "b_seoul"}),
    ],
)
@pytest.mark.parametrize("kind", list(KINDS))
async def test_operators_may_not_write_logs(gql, token, admin, role, claims, kind):
    # when
    body = await send(gql, token(role, **claims), kind, [FACTORIES[kind](1)])
    # then
    assert error_codes(body) == ["FORBIDDEN"]


async def test_writing_logs_needs_a_token(gql, admin):
    body = await send(gql, None, "events", [event(1)])
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await stored_events(gql, admin) == []


@pytest.mark.parametrize("kind", list(KINDS))
async def test_an_unbounded_engine_writes_anywhere(gql, token, kind):
    # given
    engine = token("engine")
    records = [FACTORIES[kind](1, user="u_kr1"), FACTORIES[kind](2, user="u_de1")]
    # when
    result = await logged(gql, engine, kind, records)
    # then
    assert result["statuses"] == ["ACCEPTED", "ACCEPTED"]


@pytest.mark.parametrize(
    ("claims", "inside", "outside"),
    [
        ({"branch_id": "b_seoul"}, "u_kr2", "u_kr3"),
        ({"country_id": "c_kr"}, "u_kr3", "u_jp1"),
        ({"region_id": "r_apac"}, "u_jp1", "u_de1"),
    ],
)
@pytest.mark.parametrize("form", ["json", "typed"])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_bounded_engine_may_not_write_outside_its_scope(
    gql, token, admin, claims, inside, outside, form, kind
):
    # given: an engine whose token limits it to one node of the tree
    engine = token("engine", **claims)
    records = [FACTORIES[kind](1, user=inside), FACTORIES[kind](2, user=outside)]
    # when
    strict = await logged(gql, engine, kind, records, form=form)
    partial = await logged(gql, engine, kind, records, form=form, partial=True)
    # then: AG-DATA-04, the record outside is refused
    assert strict["statuses"] == ["SKIPPED", "REJECTED"]
    assert partial["statuses"] == ["ACCEPTED", "REJECTED"]
    assert [(e["index"], e["code"]) for e in partial["errors"]] == [(1, "E_OUT_OF_SCOPE")]


async def test_a_scope_another_sender_wrote_is_still_checked_against_this_senders_bound(gql, token, admin):
    # given: the scope of u_de1 passed its checks for an unbounded engine (remembered since)
    free = await logged(gql, token("engine", sub="free-engine"), "events", [event(1, user="u_de1")])
    assert free["statuses"] == ["ACCEPTED"]
    # when: an engine bound to another region sends a record in that same scope
    bounded = await logged(
        gql, token("engine", region_id="r_apac"), "events", [event(2, user="u_de1")], partial=True
    )
    # then
    assert [(e["index"], e["code"]) for e in bounded["errors"]] == [(0, "E_OUT_OF_SCOPE")]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_bounded_engine_may_not_pull_in_a_user_the_directory_places_elsewhere(
    gql, token, admin, kind
):
    # given: u_kr3 works in b_busan
    await register_org(gql, admin)
    seoul_engine = token("engine", branch_id="b_seoul")
    # when: the Seoul engine logs u_kr3 under its own branch
    record = FACTORIES[kind](1, user="u_kr3", scope=dict(SCOPES["u_kr1"]))
    result = await logged(gql, seoul_engine, kind, [record], partial=True)
    # then
    assert [(e["index"], e["code"], e["field"]) for e in result["errors"]] == [(0, "E_OUT_OF_SCOPE", "scope")]
    assert result["accepted"] == 0


@pytest.mark.parametrize("user", ["u_kr1", "u_new"])
async def test_a_bounded_engine_may_not_file_its_branch_under_other_parents(gql, token, admin, user):
    # given: b_seoul sits in c_kr / r_apac (known from its users); u_new is not registered
    await register_org(gql, admin)
    seoul_engine = token("engine", branch_id="b_seoul")
    spoofed = {"regionId": "r_emea", "countryId": "c_de", "branchId": "b_seoul", "teamId": "t_seoul_a"}
    # when
    result = await logged(gql, seoul_engine, "events", [event(1, userId=user, scope=spoofed)], partial=True)
    # then
    assert [(e["index"], e["code"]) for e in result["errors"]] == [(0, "E_OUT_OF_SCOPE")]
    assert await stored_events(gql, admin) == []


async def test_a_bounded_engine_may_log_a_new_user_or_team_inside_its_own_branch(gql, token, admin):
    # given
    await register_org(gql, admin)
    seoul_engine = token("engine", branch_id="b_seoul")
    new_team = dict(SCOPES["u_kr1"], teamId="t_seoul_b")
    # when
    result = await logged(
        gql, seoul_engine, "events", [event(1, userId="u_new", scope=new_team), event(2, scope=new_team)]
    )
    # then
    assert result["statuses"] == ["ACCEPTED", "ACCEPTED"]


async def test_an_unbounded_engine_may_log_a_user_anywhere(gql, token, admin):
    # given: u_kr3 works in b_busan
    await register_org(gql, admin)
    # when: an engine without a bound logs u_kr3 in Berlin (a transfer)
    result = await logged(gql, token("engine"), "events", [event(1, user="u_kr3", scope=SCOPES["u_de1"])])
    # then
    assert result["statuses"] == ["ACCEPTED"]


# --- what is stored ---------------------------------------------------------------------------


async def test_the_server_stamps_receipt_time_and_sender_and_keeps_utc(gql, token, admin):
    # given
    engine = token("engine", sub="quiz-engine-7")
    before = datetime.now(UTC)
    # when: a record stamped in Seoul time
    await logged(gql, engine, "events", [event(1, timestamp="2026-03-02T09:15:00+09:00")])
    after = datetime.now(UTC)
    # then
    [stored] = await stored_events(gql, admin)
    assert stored["sentBy"] == "quiz-engine-7"
    assert before <= datetime.fromisoformat(stored["receivedAt"]) <= after
    assert datetime.fromisoformat(stored["timestamp"]) == datetime(2026, 3, 2, 0, 15, tzinfo=UTC)
    assert stored["timestamp"].endswith("+00:00")


async def test_a_stored_event_reads_back_as_sent(gql, admin):
    # given
    record = event(
        1,
        eventType="saleslab_turn",
        context={"moduleId": None, "quizId": None, "scenarioId": "s_upsell", "turnIndex": 3, "action": "ask"},
    )
    # when
    await logged(gql, admin, "events", [record])
    # then
    [stored] = await stored_events(gql, admin)
    assert {k: stored[k] for k in ("eventId", "userId", "eventType", "context", "version", "scope")} == {
        "eventId": "ev-0001",
        "userId": "u_kr1",
        "eventType": "saleslab_turn",
        "context": record["context"],
        "version": record["version"],
        "scope": record["scope"],
    }


async def test_a_sender_id_too_long_to_record_is_refused(gql, token, admin):
    # when: a token whose sub does not fit the sent_by column
    body = await send(gql, token("engine", sub="e" * 129), "events", [event(1)])
    # then: the token itself is refused (app/auth.py), so no path records a cut-off sender
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await stored_events(gql, admin) == []
