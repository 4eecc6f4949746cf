"""Ids are idempotency keys: re-sends are no-ops, conflicting content is refused, races store once."""

from __future__ import annotations

import asyncio

import pytest

from app.services.ingest import storage
from tests.log_records import FACTORIES, KINDS, event, logged, stored_events

CONFLICT = "eventId already stored with different content"


@pytest.fixture
def stale_first_read(monkeypatch):
    """Call it to make the next read of stored ids miss what a concurrent sender just committed."""

    def arm():
        real = storage._stored_hashes
        calls = 0

        async def stale_once(session, target, keys):
            nonlocal calls
            calls += 1
            return {} if calls == 1 else await real(session, target, keys)

        monkeypatch.setattr(storage, "_stored_hashes", stale_once)

    return arm


@pytest.mark.parametrize("kind", list(KINDS))
async def test_resending_a_batch_is_a_no_op_reported_as_duplicate(gql, admin, kind):
    # given
    records = [FACTORIES[kind](n) for n in range(1, 4)]
    await logged(gql, admin, kind, records)
    # when
    again = await logged(gql, admin, kind, records)
    # then
    assert again["statuses"] == ["DUPLICATE"] * 3
    assert (again["accepted"], again["duplicates"]) == (0, 3)


async def test_a_resend_is_recognised_by_content_not_by_spelling(gql, admin):
    # given
    await logged(gql, admin, "events", [event(1, timestamp="2026-03-02T09:01:00+09:00")])
    # when: the same instant in UTC, and a null context field left out
    same = event(1, timestamp="2026-03-02T00:01:00Z")
    del same["context"]["quizId"]
    again = await logged(gql, admin, "events", [same])
    # then
    assert again["statuses"] == ["DUPLICATE"]


async def test_the_same_id_with_other_content_is_rejected_and_changes_nothing(gql, admin):
    # given
    await logged(gql, admin, "events", [event(1, userId="u_kr1")])
    # when: a different record under the same eventId, with a new one beside it
    result = await logged(gql, admin, "events", [event(1, user="u_kr2"), event(2)])
    # then: refused; the new record was not stored either (all-or-nothing)
    assert result["statuses"] == ["REJECTED", "SKIPPED"]
    [error] = result["errors"]
    assert (error["index"], error["id"], error["code"]) == (0, "ev-0001", "E_SCHEMA_MISMATCH")
    assert CONFLICT in error["message"]
    stored = await stored_events(gql, admin)
    assert [(e["eventId"], e["userId"]) for e in stored] == [("ev-0001", "u_kr1")]


async def test_partial_stores_the_new_records_beside_a_conflict(gql, admin):
    # given
    await logged(gql, admin, "events", [event(1)])
    # when
    result = await logged(
        gql, admin, "events", [event(1, eventType="login"), event(2), event(1)], partial=True
    )
    # then
    assert result["statuses"] == ["REJECTED", "ACCEPTED", "DUPLICATE"]
    assert [e["eventId"] for e in await stored_events(gql, admin)] == ["ev-0001", "ev-0002"]


async def test_duplicates_do_not_fail_an_all_or_nothing_batch(gql, admin):
    # given
    await logged(gql, admin, "events", [event(1)])
    # when: a retry after a timeout carries the stored record and new ones
    result = await logged(gql, admin, "events", [event(1), event(2)])
    # then
    assert result["statuses"] == ["DUPLICATE", "ACCEPTED"]


async def test_an_id_repeated_inside_one_batch(gql, admin):
    # when: the same record twice, then one id with two contents
    same = await logged(gql, admin, "events", [event(1), event(1)])
    different = await logged(gql, admin, "events", [event(2), event(2, eventType="login")], partial=True)
    # then: the first occurrence decides, a later identical one is a duplicate of it
    assert same["statuses"] == ["ACCEPTED", "DUPLICATE"]
    assert different["statuses"] == ["ACCEPTED", "REJECTED"]
    assert "earlier in this batch (index 0)" in different["errors"][0]["message"]
    assert [e["eventId"] for e in await stored_events(gql, admin)] == ["ev-0001", "ev-0002"]


async def test_a_repeated_conflicting_record_is_rejected_at_each_index(gql, admin):
    # given
    await logged(gql, admin, "events", [event(1)])
    # when: the conflicting record twice
    conflicting = event(1, eventType="login")
    result = await logged(gql, admin, "events", [conflicting, conflicting], partial=True)
    # then
    assert result["statuses"] == ["REJECTED", "REJECTED"]
    assert [e["index"] for e in result["errors"]] == [0, 1]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_concurrent_sends_of_the_same_ids_store_them_once(gql, admin, kind):
    # given: five engines retrying the same 50 records at once
    records = [FACTORIES[kind](n) for n in range(1, 51)]
    # when
    results = await asyncio.gather(*(logged(gql, admin, kind, records) for _ in range(5)))
    # then: each record is reported ACCEPTED exactly once, DUPLICATE to every other sender
    assert sum(r["accepted"] for r in results) == 50
    assert sum(r["duplicates"] for r in results) == 200
    for index in range(50):
        assert sorted(r["statuses"][index] for r in results) == ["ACCEPTED"] + ["DUPLICATE"] * 4


async def test_concurrent_conflicting_sends_store_one_version(gql, admin):
    # given: two senders with different content under the same ids
    mine = [event(n, eventType="module_start") for n in range(1, 21)]
    theirs = [event(n, eventType="module_complete") for n in range(1, 21)]
    # when
    a, b = await asyncio.gather(logged(gql, admin, "events", mine), logged(gql, admin, "events", theirs))
    # then: one batch won whole, the other was refused whole
    assert sorted([a["accepted"], b["accepted"]]) == [0, 20]
    winner = "module_start" if a["accepted"] else "module_complete"
    stored = await stored_events(gql, admin)
    assert len(stored) == 20
    assert {e["eventType"] for e in stored} == {winner}


async def test_a_lost_race_is_settled_by_rechecking_what_was_stored(gql, admin, stale_first_read):
    # given: the first read of stored ids misses rows a concurrent sender just committed
    await logged(gql, admin, "events", [event(1), event(2)])
    stale_first_read()
    # when: a batch with a re-send, a conflict and a new record
    result = await logged(
        gql, admin, "events", [event(1), event(2, eventType="login"), event(3)], partial=True
    )
    # then: ON CONFLICT DO NOTHING skipped the stored ids, the re-check classified them
    assert result["statuses"] == ["DUPLICATE", "REJECTED", "ACCEPTED"]
    assert CONFLICT in result["errors"][0]["message"]
    stored = await stored_events(gql, admin)
    assert [(e["eventId"], e["eventType"]) for e in stored] == [
        ("ev-0001", "module_start"),
        ("ev-0002", "module_start"),
        ("ev-0003", "module_start"),
    ]


async def test_a_lost_race_with_a_conflict_rolls_back_an_all_or_nothing_batch(gql, admin, stale_first_read):
    # given
    await logged(gql, admin, "events", [event(1)])
    stale_first_read()
    # when
    result = await logged(gql, admin, "events", [event(2), event(1, eventType="login")])
    # then: the new record written before the conflict showed up is rolled back
    assert result["statuses"] == ["SKIPPED", "REJECTED"]
    assert [e["eventId"] for e in await stored_events(gql, admin)] == ["ev-0001"]
