"""Tampering with the audit log in raw SQL, as an attacker with database access but without
the server's audit secret: the triggers refuse it, and where the attacker bypasses them
(drops the triggers on SQLite, replica mode on PostgreSQL), `auditVerify` finds it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from starlette.applications import Starlette

from app.auth import Role, issue_token
from app.main import create_app
from app.services import audit
from persistence.models import AuditEntryRow, AuditHeadRow
from tests.conftest import TEST_AUDIT_SECRET, GraphQLClient, make_settings
from tests.org import USERS, register_org

AUDIT_VERIFY = """
query($anchorSeq: Int, $anchorHash: String) {
  auditVerify(anchorSeq: $anchorSeq, anchorHash: $anchorHash) {
    ok checked firstBrokenSeq reason lastSeq lastHash
  }
}
"""
Statement = tuple[str, dict[str, Any]]


# --- the attacker's tools ---------------------------------------------------------------------


async def tamper(engine: AsyncEngine, *statements: Statement) -> None:
    """Run raw SQL past the append-only triggers, then leave them as they were."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for sql, params in statements:
                await conn.execute(text(sql), params)
            return
        found = await conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name IN ('audit_log', 'audit_head')"
        )
        triggers = found.all()
        for name, _sql in triggers:
            await conn.exec_driver_sql(f"DROP TRIGGER {name}")
        for sql, params in statements:
            await conn.execute(text(sql), params)
        for _name, sql in triggers:
            await conn.exec_driver_sql(sql)


def sql(statement: str, **params: Any) -> Statement:
    return statement, params


async def stored(app: Starlette) -> tuple[list[AuditEntryRow], AuditHeadRow]:
    async with app.state.db.session() as session:
        rows = list((await session.scalars(select(AuditEntryRow).order_by(col(AuditEntryRow.seq)))).all())
        head = await session.scalar(select(AuditHeadRow))
    assert head is not None
    return rows, head


def sha256(row: AuditEntryRow) -> str:
    return hashlib.sha256(audit.canonical_json(audit.hashed_fields(row))).hexdigest()


def hmac_with(secret: str):
    def sign(row: AuditEntryRow) -> str:
        return audit.entry_hash(secret, row)

    return sign


def forged_row(seq: int, prev_hash: str, **changes: Any) -> AuditEntryRow:
    values: dict[str, Any] = {
        "seq": seq,
        "at": "2030-01-01 00:00:00.000000",
        "actor_sub": "admin-test",
        "actor_role": "admin",
        "action": "register_user",
        "target": "user:u_ghost",
        "before": None,
        "after": {"userId": "u_ghost"},
        "request_id": "forged",
        "user_id": "u_ghost",
        "prev_hash": prev_hash,
        "entry_hash": "",
    } | changes
    return AuditEntryRow.model_validate(values)


def insert(row: AuditEntryRow) -> Statement:
    return sql(
        "INSERT INTO audit_log (seq, at, actor_sub, actor_role, action, target, before, after, "
        "request_id, user_id, prev_hash, entry_hash) VALUES (:seq, :at, :actor_sub, :actor_role, "
        ":action, :target, NULL, :after, :request_id, :user_id, :prev_hash, :entry_hash)",
        seq=row.seq,
        at=row.at,
        actor_sub=row.actor_sub,
        actor_role=row.actor_role,
        action=row.action,
        target=row.target,
        after=audit.canonical_json(row.after).decode(),
        request_id=row.request_id,
        user_id=row.user_id,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def chain(gql, admin, app) -> list[AuditEntryRow]:
    """Five entries: the organisation's five registrations."""
    await register_org(gql, admin)
    rows, _head = await stored(app)
    assert [row.seq for row in rows] == [1, 2, 3, 4, 5]
    return rows


async def verification(gql, admin, **anchor: Any) -> dict[str, Any]:
    body = await gql(AUDIT_VERIFY, anchor, as_=admin)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["auditVerify"]
    return result


def assert_broken(result: dict[str, Any], seq: int, reason: str) -> None:
    assert result["ok"] is False, result
    assert result["firstBrokenSeq"] == seq, result
    assert reason in result["reason"], result
    assert result["checked"] == result["lastSeq"] == seq - 1, result


# --- each tamper case, on the database the suite runs on ----------------------------------------


async def test_the_untouched_chain_verifies(gql, admin, chain):
    result = await verification(gql, admin)
    assert result["ok"] is True
    assert (result["checked"], result["lastSeq"], result["lastHash"]) == (5, 5, chain[-1].entry_hash)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("after", '{"userId":"u_kr3","name":"Mallory"}'),
        ("actor_sub", "someone-else"),
        ("target", "user:u_other"),
        ("request_id", "req-other"),
    ],
)
async def test_an_edited_entry_is_detected(gql, admin, app, chain, column, value):
    # when
    await tamper(app.state.db.engine, sql(f"UPDATE audit_log SET {column} = :v WHERE seq = 3", v=value))
    # then
    result = await verification(gql, admin)
    assert_broken(result, 3, "does not match its hash")
    assert result["checked"] == 2


async def test_a_deleted_entry_is_detected(gql, admin, app, chain):
    # when
    await tamper(app.state.db.engine, sql("DELETE FROM audit_log WHERE seq = 3"))
    # then
    assert_broken(await verification(gql, admin), 3, "entry 3 is missing")


async def test_reordered_entries_are_detected(gql, admin, app, chain):
    # when: entries 2 and 3 swap places
    await tamper(
        app.state.db.engine,
        sql("UPDATE audit_log SET seq = -2 WHERE seq = 2"),
        sql("UPDATE audit_log SET seq = 2 WHERE seq = 3"),
        sql("UPDATE audit_log SET seq = 3 WHERE seq = -2"),
    )
    # then
    assert_broken(await verification(gql, admin), 2, "entry 2")


async def test_reordered_contents_with_their_links_rewired_are_detected(gql, admin, app, chain):
    # given: entry 3's content and hash moved to seq 2 and back, links patched to match
    two, three = chain[1], chain[2]
    # when
    await tamper(
        app.state.db.engine,
        sql("UPDATE audit_log SET prev_hash = 'tmp4' WHERE seq = 4"),
        sql("UPDATE audit_log SET seq = -2, prev_hash = 'tmp2' WHERE seq = 2"),
        sql("UPDATE audit_log SET seq = 2, prev_hash = :p WHERE seq = 3", p=chain[0].entry_hash),
        sql("UPDATE audit_log SET seq = 3, prev_hash = :p WHERE seq = -2", p=three.entry_hash),
        sql("UPDATE audit_log SET prev_hash = :p WHERE seq = 4", p=two.entry_hash),
    )
    # then: the hash covers seq and prev_hash
    assert_broken(await verification(gql, admin), 2, "does not match its hash")


async def test_an_entry_inserted_in_the_middle_is_detected(gql, admin, app, chain):
    # given: a forged entry 3, the old 3..5 shifted to 4..6, links and head patched
    ghost = forged_row(3, chain[1].entry_hash)
    ghost.entry_hash = sha256(ghost)
    shift = [sql(f"UPDATE audit_log SET seq = {seq + 1} WHERE seq = {seq}") for seq in (5, 4, 3)]
    # when
    await tamper(
        app.state.db.engine,
        *shift,
        sql("UPDATE audit_log SET prev_hash = :p WHERE seq = 4", p=ghost.entry_hash),
        insert(ghost),
        sql("UPDATE audit_head SET seq = 6"),
    )
    # then
    assert_broken(await verification(gql, admin), 3, "entry 3 does not match its hash")


@pytest.mark.parametrize("move_head", [False, True])
async def test_an_entry_appended_without_the_key_is_detected(gql, admin, app, chain, move_head):
    # given
    ghost = forged_row(6, chain[-1].entry_hash)
    ghost.entry_hash = sha256(ghost)
    head = [sql("UPDATE audit_head SET seq = 6, entry_hash = :h", h=ghost.entry_hash)] if move_head else []
    # when
    await tamper(app.state.db.engine, insert(ghost), *head)
    # then
    reason = "entry 6 does not match its hash" if move_head else "beyond the chain head"
    assert_broken(await verification(gql, admin), 6, reason)


@pytest.mark.parametrize(
    ("signer", "detected"),
    [
        (sha256, True),  # a plain hash of the canonical JSON
        (hmac_with("guessed-secret"), True),  # an HMAC, with a key that is not the server's
        (hmac_with(TEST_AUDIT_SECRET), False),  # control: with the real key a rewrite is invisible
    ],
    ids=["sha256", "hmac-wrong-key", "hmac-server-key"],
)
async def test_a_forged_entry_rechained_to_the_end_is_detected_without_the_key(
    gql, admin, app, chain, signer, detected
):
    # given: the attacker edits entry 3 and recomputes every hash and link after it, and the head
    rows = [row.model_copy() for row in chain]
    rows[2].after = {"userId": "u_kr3", "name": "Mallory"}
    statements: list[Statement] = []
    prev = rows[1].entry_hash
    for row in rows[2:]:
        row.prev_hash = prev
        row.entry_hash = prev = signer(row)
        statements.append(
            sql(
                "UPDATE audit_log SET after = :after, prev_hash = :p, entry_hash = :h WHERE seq = :seq",
                after=audit.canonical_json(row.after).decode(),
                p=row.prev_hash,
                h=row.entry_hash,
                seq=row.seq,
            )
        )
    secret = TEST_AUDIT_SECRET if not detected else "guessed-secret"
    statements.append(
        sql("UPDATE audit_head SET entry_hash = :h, mac = :m", h=prev, m=audit.head_mac(secret, 5, prev))
    )
    # when
    await tamper(app.state.db.engine, *statements)
    # then
    result = await verification(gql, admin)
    if detected:
        assert_broken(result, 3, "entry 3 does not match its hash")
    else:
        assert result["ok"] is True, result


async def test_a_truncated_tail_is_detected_by_the_chain_head(gql, admin, app, chain):
    # when
    await tamper(app.state.db.engine, sql("DELETE FROM audit_log WHERE seq >= 4"))
    # then
    assert_broken(await verification(gql, admin), 4, "missing from the end")


async def test_a_head_rewritten_to_match_a_truncated_tail_is_detected(gql, admin, app, chain):
    # when: the head now claims entry 3 is the last, with a made-up mac
    await tamper(
        app.state.db.engine,
        sql("DELETE FROM audit_log WHERE seq >= 4"),
        sql("UPDATE audit_head SET seq = 3, entry_hash = :h, mac = :m", h=chain[2].entry_hash, m="f" * 64),
    )
    # then
    assert_broken(await verification(gql, admin), 4, "chain head does not match")


async def test_a_truncated_tail_with_a_replayed_head_needs_the_external_anchor(gql, admin, app):
    # given: the attacker copied the head row when the log had 3 entries
    for user in USERS[:3]:
        await register_org_member(gql, admin, user)
    _rows, old_head = await stored(app)
    for user in USERS[3:]:
        await register_org_member(gql, admin, user)
    anchor = await verification(gql, admin)  # what an operator saved outside the database
    # when: entries 4..5 are deleted and the old head is restored
    await tamper(
        app.state.db.engine,
        sql("DELETE FROM audit_log WHERE seq >= 4"),
        sql(
            "UPDATE audit_head SET seq = :s, entry_hash = :h, mac = :m",
            s=old_head.seq,
            h=old_head.entry_hash,
            m=old_head.mac,
        ),
    )
    # then: the database alone looks consistent (the documented limit) ...
    alone = await verification(gql, admin)
    anchored = await verification(gql, admin, anchorSeq=anchor["lastSeq"], anchorHash=anchor["lastHash"])
    assert alone["ok"] is True
    assert alone["lastSeq"] == 3
    # ... and the anchor kept outside it reveals the truncation
    assert_broken(anchored, 4, "not in the chain")


async def register_org_member(gql, admin, user):
    from tests.org import REGISTER_USER, register_input

    body = await gql(REGISTER_USER, {"input": register_input(user)}, as_=admin)
    assert "errors" not in body, body


async def test_an_anchor_that_matches_verifies(gql, admin, chain):
    result = await verification(gql, admin, anchorSeq=2, anchorHash=chain[1].entry_hash)
    assert result["ok"] is True


async def test_an_anchor_that_differs_is_reported(gql, admin, chain):
    result = await verification(gql, admin, anchorSeq=2, anchorHash="a" * 64)
    assert_broken(result, 2, "differs from the anchor")


@pytest.mark.parametrize(
    "anchor", [{"anchorSeq": 2}, {"anchorHash": "a" * 64}, {"anchorSeq": 0, "anchorHash": "a" * 64}]
)
async def test_a_half_or_malformed_anchor_is_a_schema_mismatch(gql, admin, chain, anchor):
    body = await gql(AUDIT_VERIFY, anchor, as_=admin)
    assert body["errors"][0]["extensions"]["code"] == "E_SCHEMA_MISMATCH"


# --- on both databases in one run ---------------------------------------------------------------


@dataclass
class Env:
    gql: GraphQLClient
    app: Starlette
    admin: str


@pytest.fixture
async def each_env(each_dbs) -> AsyncIterator[Env]:
    url = await each_dbs.fresh()
    settings = make_settings(url)
    application = create_app(settings)
    admin = issue_token(settings, sub="admin-test", role=Role.ADMIN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    ) as http:
        env = Env(GraphQLClient(http, lambda *a, **k: admin), application, admin)
        await register_org(env.gql, admin)
        yield env
    await application.state.db.dispose()
    await each_dbs.drop(url)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor_sub = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 5",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET seq = 0",
    ],
)
async def test_the_database_refuses_to_change_history(each_env, statement):
    # when / then
    with pytest.raises(DBAPIError, match=r"append-only|only moves forward"):
        async with each_env.app.state.db.engine.begin() as conn:
            await conn.exec_driver_sql(statement)
    assert (await verification(each_env.gql, each_env.admin))["ok"] is True


async def test_the_database_refuses_to_replace_or_truncate(each_env):
    engine = each_env.app.state.db.engine
    statement = (
        "TRUNCATE audit_log"
        if engine.dialect.name == "postgresql"
        else "INSERT OR REPLACE INTO audit_log SELECT * FROM audit_log WHERE seq = 2"
    )
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.exec_driver_sql(statement)
    assert (await verification(each_env.gql, each_env.admin))["checked"] == 5


async def test_an_edit_is_detected_on_each_database(each_env):
    await tamper(each_env.app.state.db.engine, sql("UPDATE audit_log SET user_id = 'u_x' WHERE seq = 2"))
    assert_broken(await verification(each_env.gql, each_env.admin), 2, "does not match its hash")


async def test_a_deletion_is_detected_on_each_database(each_env):
    await tamper(each_env.app.state.db.engine, sql("DELETE FROM audit_log WHERE seq = 2"))
    assert_broken(await verification(each_env.gql, each_env.admin), 2, "entry 2 is missing")
