"""Errors reach clients with the contract's codes; our own bugs are masked."""

from __future__ import annotations

import logging

import pytest

from app.services import directory
from tests.conftest import error_codes

USERS_FIRST = "query($first: Int!) { users(first: $first) { nodes { userId } } }"


async def test_unknown_field_is_a_schema_mismatch_without_suggestions(gql, admin):
    # when
    body = await gql("{ users { nodes { userid } } }", as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert "Did you mean" not in body["errors"][0]["message"]


async def test_wrong_variable_type_is_a_schema_mismatch(gql, admin):
    body = await gql(USERS_FIRST, {"first": "ten"}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_wrong_literal_type_is_a_schema_mismatch(gql, admin):
    body = await gql('{ users(first: "ten") { nodes { userId } } }', as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_missing_required_input_field_is_a_schema_mismatch(gql, admin):
    body = await gql('mutation { registerUser(input: {userId: "u1", name: "x"}) { userId } }', as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_syntax_error_is_a_schema_mismatch(gql, admin):
    body = await gql("{ users { nodes { userId } ", as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_unexpected_error_is_masked_and_logged(gql, admin, monkeypatch, caplog):
    # given: a fault deep in the service layer
    async def broken(*_args, **_kwargs):
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(directory, "list_users", broken)
    # when
    with caplog.at_level(logging.ERROR, logger="trainer_console.errors"):
        body = await gql(USERS_FIRST, {"first": 5}, as_=admin)
    # then: the client sees a code and nothing of the detail
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "secret" not in str(body)
    assert body["errors"][0]["message"] == "Internal server error."
    # and the server log keeps the detail for operators
    assert "postgres://secret@db" in caplog.text


async def test_domain_codes_stay_visible_next_to_masked_errors(gql, token):
    # a branch operator asking for a user outside its branch: the code survives masking
    body = await gql('{ user(id: "u_other") { userId } }', as_=token("branch", branch_id="b1"))
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "not in your scope"


async def test_non_json_body_is_a_client_error_not_a_500(client):
    response = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b"42",
        b'{"query": 7}',
        b'{"variables": {}}',
        b'{"query": "{ me { sub } }", "variables": [1]}',
        b'{"query": "{ me { sub } }", "operationName": 3}',
        b'{"query": "subscription { performanceUpdated(userId: \\"u\\") { userId } }"}',
        # not interoperable JSON (RFC 7493): bad UTF-8, a lone surrogate, NaN, nesting past 1024
        b'{"query": "\xff"}',
        b'{"query": "{ user(id: $u) { userId } }", "variables": {"u": "x\\ud800"}}',
        b'{"query": "{ me { sub } }", "variables": {"x": NaN}}',
        b'{"query": "{ me { sub } }", "variables": {"x": ' + b"[" * 1100 + b"]" * 1100 + b"}}",
    ],
)
async def test_malformed_requests_are_400_not_500(client, admin, body):
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": "application/json", "Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["E_SCHEMA_MISMATCH"]  # the shape of every other error


async def test_the_media_type_is_case_insensitive(client, admin):
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ me { sub } }"}',
        headers={"content-type": "Application/JSON; charset=UTF-8", "Authorization": f"Bearer {admin}"},
    )
    assert response.json() == {"data": {"me": {"sub": "admin-test"}}}


@pytest.mark.parametrize("instant", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_an_instant_outside_the_utc_calendar_is_a_schema_mismatch(gql, admin, instant):
    body = await gql(
        "query($t: DateTime!) { events(from: $t) { nodes { eventId } } }", {"t": instant}, as_=admin
    )
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_audit_log_takes_an_instant_without_a_zone_as_utc(gql, admin):
    # given: from without a zone (UTC by the schema's rule), to with one
    query = "query($f: DateTime, $t: DateTime) { auditLog(from: $f, to: $t, first: 5) { nodes { action } } }"
    # when
    body = await gql(query, {"f": "2026-03-01T00:00:00", "t": "2026-03-02T00:00:00Z"}, as_=admin)
    backwards = await gql(query, {"f": "2026-03-02T09:00:00", "t": "2026-03-02T00:00:00+09:00"}, as_=admin)
    # then
    assert body["data"]["auditLog"]["nodes"] == []
    assert error_codes(backwards) == ["E_SCHEMA_MISMATCH"]


async def test_the_operation_name_picks_the_operation(gql, admin):
    document = "query A { me { sub } } query B { me { role } }"
    response = await gql.http.post(
        "/graphql",
        json={"query": document, "operationName": "B"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.json() == {"data": {"me": {"role": "ADMIN"}}}


async def test_several_operations_and_no_operation_name_is_an_error(gql, admin):
    # GraphQL's GetOperation: with several operations, the request must name one
    body = await gql("query A { me { sub } } query B { me { role } }", as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert "operation name" in body["errors"][0]["message"]
