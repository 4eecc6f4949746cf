"""Identity: bearer JWTs good, bad, expired, and the claims each role needs."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import TEST_SECRET, error_codes

ME = "{ me { sub role regionId countryId branchId } }"


async def test_valid_token_identifies_the_principal(gql, token):
    # given
    bearer = token("branch", sub="op-7", branch_id="b_seoul")
    # when
    body = await gql(ME, as_=bearer)
    # then
    assert body["data"]["me"] == {
        "sub": "op-7",
        "role": "BRANCH",
        "regionId": None,
        "countryId": None,
        "branchId": "b_seoul",
    }


async def test_missing_token_is_unauthenticated(gql):
    body = await gql(ME)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer", "bearer  "],
)
async def test_malformed_authorization_is_unauthenticated(client, header):
    response = await client.post("/graphql", json={"query": ME}, headers={"Authorization": header})
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_token_signed_with_another_secret_is_unauthenticated(gql):
    # given
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "exp": int(time.time()) + 60}, "another-secret-" * 3, "HS256"
    )
    # when
    body = await gql(ME, as_=forged)
    # then
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "signature" in body["errors"][0]["message"].lower()


async def test_alg_none_token_is_refused(gql):
    unsigned = jwt.encode({"sub": "x", "role": "admin", "exp": int(time.time()) + 60}, None, "none")
    body = await gql(ME, as_=unsigned)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_expired_token_says_it_expired(gql, token):
    # given
    expired = token("admin", ttl_seconds=-5)
    # when
    body = await gql(ME, as_=expired)
    # then
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "expired" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("claims", "missing"),
    [
        ({"role": "branch"}, "branchId"),
        ({"role": "country"}, "countryId"),
        ({"role": "region"}, "regionId"),
    ],
)
async def test_operator_token_without_its_scope_claim_is_refused(gql, claims, missing):
    bearer = jwt.encode({"sub": "op", "exp": int(time.time()) + 60, **claims}, TEST_SECRET, "HS256")
    body = await gql(ME, as_=bearer)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert missing in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "op", "role": "branch", "branchId": ""},  # would read as "no branch at all"
        {"sub": "op", "role": "engine", "regionId": "r 1"},
        {"sub": "", "role": "admin"},
        {"sub": "ops\nlead", "role": "admin"},  # recorded as the sender of logs and audit entries
        {"sub": "x" * 129, "role": "admin"},
    ],
)
async def test_claims_that_are_not_ids_are_refused(gql, claims):
    bearer = jwt.encode({"exp": int(time.time()) + 60, **claims}, TEST_SECRET, "HS256")
    body = await gql(ME, as_=bearer)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_unknown_role_is_refused(gql):
    bearer = jwt.encode({"sub": "x", "role": "root", "exp": int(time.time()) + 60}, TEST_SECRET, "HS256")
    body = await gql(ME, as_=bearer)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_token_without_expiry_is_refused(gql):
    bearer = jwt.encode({"sub": "x", "role": "admin"}, TEST_SECRET, "HS256")
    body = await gql(ME, as_=bearer)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_engine_token_may_carry_a_scope_bound(gql, token):
    body = await gql(ME, as_=token("engine", sub="quiz-engine", country_id="c_kr"))
    assert body["data"]["me"]["role"] == "ENGINE"
    assert body["data"]["me"]["countryId"] == "c_kr"


async def test_a_remembered_token_still_expires(gql, token, monkeypatch):
    # given: a token used once (and so remembered as verified)
    bearer = token("admin", ttl_seconds=30)
    assert (await gql(ME, as_=bearer))["data"]["me"]["role"] == "ADMIN"
    # when: its expiry passes
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 60)
    body = await gql(ME, as_=bearer)
    # then
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "expired" in body["errors"][0]["message"]
