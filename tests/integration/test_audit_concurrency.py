"""Concurrent writers never fork the audit chain: appends are serialised on the chain head,
and seq / prev_hash / entry_hash are unique, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from tests.org import REGISTER_USER, USERS, register_input, register_org

AUDIT_VERIFY = "{ auditVerify { ok checked firstBrokenSeq reason lastSeq } }"
AUDIT_SEQS = "query($after: String) { auditLog(first: 100, after: $after) { nodes { seq userId prevHash } } }"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """At most 10 connections per server: still concurrent, and kind to a shared PostgreSQL."""
    return {"db_pool_size": 5}


def new_user(i: int) -> dict[str, object]:
    return register_input({"userId": f"u_c{i:02}", "name": f"User {i}", "scope": ("r", "c", "b", "t")})


def moved(user: dict[str, object]) -> dict[str, object]:
    return register_input(user) | {
        "scope": {"regionId": "r", "countryId": "c", "branchId": "b_moved", "teamId": "t"}
    }


async def test_thirty_concurrent_changes_from_two_servers_keep_one_gapless_chain(gql, admin, client_with):
    # given: a second server process on the same database, and five users to move
    await register_org(gql, admin)
    other = await client_with(db_pool_size=5)
    changes = [new_user(i) for i in range(25)] + [moved(user) for user in USERS]

    async def send(i: int, change: dict[str, object]) -> dict[str, object]:
        payload = {"query": REGISTER_USER, "variables": {"input": change}}
        headers = {"Authorization": f"Bearer {admin}"}
        http = gql.http if i % 2 else other
        response = await http.post("/graphql", json=payload, headers=headers)
        body: dict[str, object] = response.json()
        return body

    # when
    bodies = await asyncio.gather(*(send(i, change) for i, change in enumerate(changes)))
    # then: every change committed with its own entry ...
    assert [body.get("errors") for body in bodies] == [None] * 30
    verified = (await gql(AUDIT_VERIFY, as_=admin))["data"]["auditVerify"]
    assert verified == {"ok": True, "checked": 35, "firstBrokenSeq": None, "reason": None, "lastSeq": 35}
    # ... in one chain: seq 1..35, each link used once
    entries = (await gql(AUDIT_SEQS, as_=admin))["data"]["auditLog"]["nodes"]
    assert sorted(entry["seq"] for entry in entries) == list(range(1, 36))
    assert len({entry["prevHash"] for entry in entries}) == 35
    affected = [entry["userId"] for entry in entries]
    assert all(affected.count(f"u_c{i:02}") == 1 for i in range(25))
    assert all(affected.count(user["userId"]) == 2 for user in USERS)
