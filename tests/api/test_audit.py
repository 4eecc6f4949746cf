"""The audit log through GraphQL (ops §7, §9): entries written with each change, `auditLog`
filters and pagination, admin only, and no change without its entry."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import pytest

from app.auth import Principal, Role
from app.services import audit
from tests.conftest import TEST_AUDIT_SECRET, error_codes
from tests.org import REGISTER_USER, USERS, register_input, register_org

AUDIT_LOG = """
query($userId: String, $action: String, $from: DateTime, $to: DateTime, $first: Int! = 50, $after: String) {
  auditLog(userId: $userId, action: $action, from: $from, to: $to, first: $first, after: $after) {
    edges {
      cursor
      node {
        seq at actorSub actorRole action category target before after requestId userId prevHash entryHash
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
AUDIT_VERIFY = "{ auditVerify { ok checked firstBrokenSeq reason lastSeq lastHash } }"
GENESIS = "0" * 64
MOVED_KR1 = register_input(USERS[0]) | {
    "name": "Mina K.",
    "scope": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_busan", "teamId": "t_busan_a"},
}


async def entries(gql, bearer, **variables):
    body = await gql(AUDIT_LOG, variables, as_=bearer)
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["auditLog"]["edges"]]


async def seqs(gql, bearer, **variables):
    return [entry["seq"] for entry in await entries(gql, bearer, **variables)]


@pytest.fixture
async def history(gql, admin):
    """Entries 1-5 register the organisation; entry 6 moves u_kr1 to Busan."""
    await register_org(gql, admin)
    body = await gql(REGISTER_USER, {"input": MOVED_KR1}, as_=admin)
    assert "errors" not in body, body


async def test_registering_a_user_appends_one_entry_with_who_what_and_after(gql, token):
    # given
    admin = token("admin", sub="ops-lead")
    user = register_input(USERS[0])
    # when
    response = await gql.http.post(
        "/graphql",
        json={"query": REGISTER_USER, "variables": {"input": user}},
        headers={"Authorization": f"Bearer {admin}", "X-Request-Id": "req-42"},
    )
    # then
    assert "errors" not in response.json()
    [entry] = await entries(gql, admin)
    assert entry["seq"] == 1
    assert entry["actorSub"] == "ops-lead"
    assert entry["actorRole"] == "admin"
    assert (entry["action"], entry["category"]) == ("register_user", "update_config")
    assert entry["target"] == "user:u_kr1"
    assert entry["userId"] == "u_kr1"
    assert entry["requestId"] == "req-42"
    assert entry["before"] is None
    assert entry["after"] == {
        "userId": "u_kr1",
        "name": "Mina",
        "regionId": "r_apac",
        "countryId": "c_kr",
        "branchId": "b_seoul",
        "teamId": "t_seoul_a",
    }
    assert entry["prevHash"] == GENESIS


async def test_requests_without_an_id_get_distinct_ones_from_the_server(gql, admin, history):
    # given: the six entries of ``history``, each written by its own request without X-Request-Id
    # when
    ids = [entry["requestId"] for entry in await entries(gql, admin)]
    # then
    assert len(ids) == 6
    assert all(isinstance(request_id, str) and len(request_id) == 32 for request_id in ids)
    assert len(set(ids)) == 6


async def test_a_request_id_that_is_not_an_id_is_replaced_by_the_servers(gql, token):
    # given: a caller-chosen X-Request-Id with a line break in it
    admin = token("admin", sub="ops-lead")
    # when
    response = await gql.http.post(
        "/graphql",
        json={"query": REGISTER_USER, "variables": {"input": register_input(USERS[0])}},
        headers={"Authorization": f"Bearer {admin}", "X-Request-Id": "req-42\tforged: yes"},
    )
    # then: the entry carries a server-made id, not the header
    assert "errors" not in response.json()
    [entry] = await entries(gql, admin)
    assert len(entry["requestId"]) == 32 and "forged" not in entry["requestId"]


async def test_moving_a_user_records_before_and_after(gql, admin, history):
    # when
    newest = (await entries(gql, admin, first=1))[0]
    # then
    assert newest["seq"] == 6
    assert newest["before"]["branchId"] == "b_seoul"
    assert newest["before"]["name"] == "Mina"
    assert newest["after"]["branchId"] == "b_busan"
    assert newest["after"]["name"] == "Mina K."


async def test_registering_a_user_again_unchanged_appends_nothing(gql, admin):
    # given: a user registered once
    user = register_input(USERS[0])
    assert "errors" not in await gql(REGISTER_USER, {"input": user}, as_=admin)
    # when: the same name and scope again, twice (as every `serve --demo` restart did)
    for _ in range(2):
        body = await gql(REGISTER_USER, {"input": user}, as_=admin)
        assert "errors" not in body, body
    # then: still the one entry of the first registration
    [entry] = await entries(gql, admin, action="register_user")
    assert entry["before"] is None


async def test_entries_link_into_a_chain_that_verifies(gql, admin, history):
    # when
    log = list(reversed(await entries(gql, admin)))
    body = await gql(AUDIT_VERIFY, as_=admin)
    # then
    assert [entry["seq"] for entry in log] == [1, 2, 3, 4, 5, 6]
    assert [entry["prevHash"] for entry in log] == [GENESIS] + [entry["entryHash"] for entry in log[:-1]]
    assert body["data"]["auditVerify"] == {
        "ok": True,
        "checked": 6,
        "firstBrokenSeq": None,
        "reason": None,
        "lastSeq": 6,
        "lastHash": log[-1]["entryHash"],
    }


async def test_an_auditor_with_the_secret_can_recompute_a_hash_from_the_api_answer(gql, admin, history):
    # given: the documented canonical form, built from what auditLog returns
    entry = (await entries(gql, admin, first=1))[0]
    at = datetime.fromisoformat(entry["at"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = {k: v for k, v in entry.items() if k not in ("entryHash", "category")} | {"at": at}
    canonical = audit.canonical_json(fields)
    # when
    expected = hmac.new(TEST_AUDIT_SECRET.encode(), canonical, hashlib.sha256).hexdigest()
    # then
    assert entry["entryHash"] == expected


async def test_an_empty_log_verifies(gql, admin):
    body = await gql(AUDIT_VERIFY, as_=admin)
    assert body["data"]["auditVerify"] == {
        "ok": True,
        "checked": 0,
        "firstBrokenSeq": None,
        "reason": None,
        "lastSeq": 0,
        "lastHash": GENESIS,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"userId": "bad id with spaces"},
        {"name": "   "},
        {"scope": {"regionId": "r", "countryId": "c", "branchId": "b/../x", "teamId": "t"}},
    ],
)
async def test_a_refused_change_leaves_no_entry(gql, admin, change):
    # when
    body = await gql(REGISTER_USER, {"input": register_input(USERS[0]) | change}, as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert await entries(gql, admin) == []
    assert (await gql(AUDIT_VERIFY, as_=admin))["data"]["auditVerify"]["checked"] == 0


async def test_a_change_whose_entry_cannot_be_written_is_rolled_back(gql, admin, monkeypatch):
    # given: appending the entry fails
    def broken_append(*_args, **_kwargs):
        raise RuntimeError("audit storage unavailable")

    monkeypatch.setattr(audit.AuditLog, "append", broken_append)
    # when
    body = await gql(REGISTER_USER, {"input": register_input(USERS[0])}, as_=admin)
    monkeypatch.undo()
    # then: no change without its entry
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    users = await gql("{ users(first: 10) { nodes { userId } } }", as_=admin)
    assert users["data"]["users"]["nodes"] == []
    assert await entries(gql, admin) == []


async def test_a_change_rolled_back_after_its_entry_leaves_no_gap(gql, admin, monkeypatch):
    # given: the entry is appended, then the change fails before commit
    real_append = audit.AuditLog.append

    def append_then_fail(*args, **kwargs):
        real_append(*args, **kwargs)
        raise RuntimeError("the change failed after its entry")

    monkeypatch.setattr(audit.AuditLog, "append", append_then_fail)
    failed = await gql(REGISTER_USER, {"input": register_input(USERS[0])}, as_=admin)
    monkeypatch.undo()
    # when
    await gql(REGISTER_USER, {"input": register_input(USERS[1])}, as_=admin)
    # then: the failed change took its entry and its seq with it
    assert error_codes(failed) == ["INTERNAL_SERVER_ERROR"]
    assert [(e["seq"], e["userId"]) for e in await entries(gql, admin)] == [(1, "u_kr2")]
    assert (await gql(AUDIT_VERIFY, as_=admin))["data"]["auditVerify"]["ok"] is True


async def test_one_transaction_may_append_several_entries(app, gql, admin):
    # given
    principal = Principal(sub="ops", role=Role.ADMIN)
    # when
    async with app.state.db.session() as session, session.begin():
        for action in ("upload_ruleset", "hot_reload"):
            await session.run_sync(
                app.state.ops.audit.append,
                principal,
                action=action,
                target="ruleset:upm",
                before=None,
                after={},
                request_id="r",
            )
    # then
    assert [e["action"] for e in await entries(gql, admin)] == ["hot_reload", "upload_ruleset"]
    assert (await gql(AUDIT_VERIFY, as_=admin))["data"]["auditVerify"]["checked"] == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"action": "drop_everything"}, ValueError),
        ({"target": ""}, ValueError),
        ({"after": {"x": float("nan")}}, ValueError),
        ({"after": object()}, TypeError),
    ],
)
async def test_an_entry_the_log_cannot_hold_is_a_programming_error(app, change, error):
    values: dict[str, Any] = {
        "action": "update_limits",
        "target": "limits",
        "before": None,
        "after": {},
        "request_id": "r",
    }
    async with app.state.db.session() as session, session.begin():
        with pytest.raises(error):
            await session.run_sync(
                app.state.ops.audit.append, Principal(sub="ops", role=Role.ADMIN), **(values | change)
            )


async def test_the_log_is_newest_first(gql, admin, history):
    assert await seqs(gql, admin) == [6, 5, 4, 3, 2, 1]


async def test_user_id_filter_finds_the_entries_about_that_user(gql, admin, history):
    assert await seqs(gql, admin, userId="u_kr1") == [6, 1]
    assert await seqs(gql, admin, userId="u_nobody") == []


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("register_user", [6, 5, 4, 3, 2, 1]),
        ("update_config", [6, 5, 4, 3, 2, 1]),  # the category of register_user
        ("reload", []),
        ("hot_reload", []),
    ],
)
async def test_action_filter_takes_an_action_or_its_category(gql, admin, history, action, expected):
    assert await seqs(gql, admin, action=action) == expected


async def test_an_unknown_action_filter_is_a_schema_mismatch(gql, admin, history):
    body = await gql(AUDIT_LOG, {"action": "drop_tables"}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_time_range_is_from_inclusive_to_exclusive(gql, admin, history):
    # given
    at = {entry["seq"]: entry["at"] for entry in await entries(gql, admin)}
    # when
    since_third = await seqs(gql, admin, **{"from": at[3]})
    before_third = await seqs(gql, admin, to=at[3])
    between = await seqs(gql, admin, **{"from": at[2], "to": at[5]})
    # then
    assert since_third == [6, 5, 4, 3]
    assert before_third == [2, 1]
    assert between == [4, 3, 2]


async def test_filters_combine(gql, admin, history):
    at = {entry["seq"]: entry["at"] for entry in await entries(gql, admin)}
    assert await seqs(gql, admin, userId="u_kr1", action="register_user", **{"from": at[2]}) == [6]


async def test_a_range_that_ends_before_it_starts_is_a_schema_mismatch(gql, admin, history):
    body = await gql(AUDIT_LOG, {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_cursor_pagination_walks_every_entry_once(gql, admin, history):
    # given
    pages: list[list[int]] = []
    after = None
    # when
    for _ in range(10):
        body = await gql(AUDIT_LOG, {"first": 4, "after": after, "action": "register_user"}, as_=admin)
        page = body["data"]["auditLog"]
        pages.append([edge["node"]["seq"] for edge in page["edges"]])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then
    assert pages == [[6, 5, 4, 3], [2, 1]]


@pytest.mark.parametrize("after", ["%%%", "dXNlcjp1X2tyMQ==", "YXVkaXQ6eA=="])  # junk, a user cursor, audit:x
async def test_a_bad_cursor_is_a_schema_mismatch(gql, admin, after):
    body = await gql(AUDIT_LOG, {"first": 2, "after": after}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


@pytest.mark.parametrize("first", [0, 101])
async def test_page_size_out_of_range_is_a_schema_mismatch(gql, admin, first):
    body = await gql(AUDIT_LOG, {"first": first}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


@pytest.mark.parametrize(
    ("role", "claims"),
    [
        ("region", {"region_id": "r_apac"}),
        ("country", {"country_id": "c_kr"}),
        ("branch", {"branch_id": "b_seoul"}),
        ("engine", {}),
    ],
)
@pytest.mark.parametrize("query", [AUDIT_LOG, AUDIT_VERIFY])
async def test_only_admins_read_or_verify_the_audit_log(gql, token, history, role, claims, query):
    body = await gql(query, as_=token(role, **claims))
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None


async def test_the_audit_log_needs_a_token(gql):
    body = await gql(AUDIT_VERIFY)
    assert error_codes(body) == ["UNAUTHENTICATED"]
