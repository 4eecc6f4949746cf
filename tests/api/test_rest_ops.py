"""ops-api-v2 through REST (/operator/ops/...): the §8 scope matrix walked completely (every role by
every path), the §2.1 and §4.1 shapes, health per role, audit pagination, limits as one operation
per call with 429 + Retry-After, and the document hidden in production.

| Operation      | Branch  | Country | Region  | Admin |   (ops-api-v2 §8)
| Model Config   | ❌      | ❌      | ❌      | ✅    |
| Feature Toggle | ❌      | ❌      | ⚠️ 일부 | ✅    |
| Hot Reload     | ❌      | ⚠️      | ⚠️      | ✅    |
| Release Create | ❌      | ❌      | ❌      | ✅    |
| Health Check   | ⚠️ 제한 | ⚠️      | ⚠️      | ✅    |
"""

from __future__ import annotations

from typing import Any

import pytest

from app.services.upm.ruleset import DEFAULT_UPM_RULESET
from tests.rest_client import code, rest_client

TYPES = (
    "scenario",
    "prompt",
    "difficulty",
    "content",
    "gamification",
    "upm",
    "insights",
    "mission",
    "system",
)
UPLOAD = "mutation($input: UploadRulesetInput!) { uploadRuleset(input: $input) { rulesetId } }"
A, R, C, B, E = "admin", "region", "country", "branch", "engine"
TOKENS = {A: {}, R: {"region_id": "r_apac"}, C: {"country_id": "c_kr"}, B: {"branch_id": "b_seoul"}, E: {}}


def document(kind: str) -> dict[str, Any]:
    return DEFAULT_UPM_RULESET.document() | {"version": "2"} if kind == "upm" else {"version": "1"}


def reloaders(kind: str) -> set[str]:
    return (
        {A}
        | ({R} if kind in ("content", "difficulty", "scenario") else set())
        | ({C} if kind == "content" else set())
    )


# name -> (method, path, body, the roles that may call it)
OPERATIONS: dict[str, tuple[str, str, Any, set[str]]] = {
    "GET model-config": ("GET", "/operator/ops/model-config", None, {A, E}),
    "PATCH model-config": ("PATCH", "/operator/ops/model-config", {"temperature": 0.5}, {A}),
    "GET features": ("GET", "/operator/ops/features", None, {A, R, E}),
    "PATCH features (regionFlippable)": (
        "PATCH",
        "/operator/ops/features/quiz_auto_generate",
        {"enabled": True},
        {A, R},
    ),
    "PATCH features (admin only)": (
        "PATCH",
        "/operator/ops/features/mission_auto_assign",
        {"enabled": False},
        {A},
    ),
    **{
        f"POST hot-reload ({kind})": (
            "POST",
            "/operator/ops/hot-reload",
            {"type": kind, "targetId": f"{kind}_v1"},
            reloaders(kind),
        )
        for kind in TYPES
    },
    "GET releases": ("GET", "/operator/ops/releases", None, {A}),
    "POST releases": ("POST", "/operator/ops/releases", {"version": "1.1.0", "notes": "n"}, {A}),
    "POST releases/rollback": ("POST", "/operator/ops/releases/rollback", {"targetVersion": "1.0.0"}, {A}),
    "GET health": ("GET", "/operator/ops/health", None, {A, R, C, B}),
    "GET diagnostics": ("GET", "/operator/ops/diagnostics", None, {A}),
    "GET limits": ("GET", "/operator/ops/limits", None, {A, E}),
    "PATCH limits": ("PATCH", "/operator/ops/limits", {"aiCallsPerMinute": 120}, {A}),
    "GET audit": ("GET", "/operator/ops/audit", None, {A}),
}


@pytest.fixture
async def rulesets_and_a_release(gql, rest, admin):
    for kind in TYPES:
        body = await gql(
            UPLOAD,
            {"input": {"type": kind, "rulesetId": f"{kind}_v1", "document": document(kind)}},
            as_=admin,
        )
        assert "errors" not in body, body
    response = await rest.post(
        "/operator/ops/releases", json={"version": "1.0.0", "notes": "baseline"}, as_=admin
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("role", [A, R, C, B, E])
async def test_every_ops_path_is_allowed_or_forbidden_exactly_as_the_matrix_says(
    rest, token, rulesets_and_a_release, role
):
    # given
    caller = token(role, **TOKENS[role])
    # when: the role calls every path
    outcomes = {}
    for name, (method, path, body, _allowed) in OPERATIONS.items():
        response = await rest.request(method, path, json=body, as_=caller)
        outcomes[name] = "allowed" if response.status_code == 200 else (response.status_code, code(response))
    # then
    assert outcomes == {
        name: "allowed" if role in allowed else (403, "FORBIDDEN")
        for name, (*_, allowed) in OPERATIONS.items()
    }


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_every_ops_path_without_a_token_is_401(rest, name):
    # given
    method, path, body, _ = OPERATIONS[name]
    # when
    response = await rest.request(method, path, json=body)
    # then
    assert (response.status_code, code(response)) == (401, "UNAUTHENTICATED")


async def test_model_config_and_limits_have_the_specs_shapes_and_patch_partially(rest, admin):
    # when
    patched = await rest.patch(
        "/operator/ops/model-config", json={"temperature": 0.2, "toneProfile": "coaching"}, as_=admin
    )
    read = await rest.get("/operator/ops/model-config", as_=admin)
    limits = await rest.patch("/operator/ops/limits", json={"maxConcurrentSessions": 12}, as_=admin)
    # then
    assert patched.json() == read.json()
    assert read.json()["temperature"] == 0.2 and read.json()["toneProfile"] == "coaching"
    assert set(read.json()) >= {"model", "temperature", "maxTokens", "toneProfile", "language", "enabled"}
    assert limits.json()["maxConcurrentSessions"] == 12
    assert set(limits.json()) >= {"aiCallsPerMinute", "fileUploadLimitMb", "maxConcurrentSessions"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/operator/ops/model-config", {"temperature": 9}),
        ("/operator/ops/model-config", {"temperature": None}),
        ("/operator/ops/model-config", {"colour": "blue"}),
        ("/operator/ops/limits", {"aiCallsPerMinute": "many"}),
        ("/operator/ops/limits", {"aiCallsPerMinute": 0}),
    ],
    ids=["out-of-range", "null", "unknown-field", "wrong-type", "zero"],
)
async def test_a_bad_patch_is_400_and_changes_nothing(rest, admin, path, body):
    # given
    before = (await rest.get(path, as_=admin)).json()
    # when
    response = await rest.patch(path, json=body, as_=admin)
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")
    assert (await rest.get(path, as_=admin)).json() == before


async def test_features_are_the_specs_map_and_a_toggle_flips(rest, admin, token):
    # when
    flipped = await rest.patch(
        "/operator/ops/features/quiz_auto_generate", json={"enabled": True}, as_=token(R, region_id="r_apac")
    )
    features = await rest.get("/operator/ops/features", as_=admin)
    # then
    assert flipped.json()["key"] == "quiz_auto_generate" and flipped.json()["enabled"] is True
    assert features.json()["quiz_auto_generate"] is True
    assert all(isinstance(value, bool) for value in features.json().values())


async def test_an_unknown_feature_is_404(rest, admin):
    # when
    response = await rest.patch("/operator/ops/features/no_such_toggle", json={"enabled": True}, as_=admin)
    # then
    assert (response.status_code, code(response)) == (404, "NOT_FOUND")


async def test_a_hot_reload_of_a_missing_target_is_409_and_keeps_the_previous(rest, admin):
    # when
    response = await rest.post(
        "/operator/ops/hot-reload", json={"type": "content", "targetId": "content_v404"}, as_=admin
    )
    # then
    assert (response.status_code, code(response)) == (409, "E_RELOAD_FAILED")


async def test_an_unknown_hot_reload_type_is_400(rest, admin):
    # when
    response = await rest.post(
        "/operator/ops/hot-reload", json={"type": "weather", "targetId": "x"}, as_=admin
    )
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")


async def test_releases_are_a_list_and_a_rollback_restores_one(rest, admin):
    # given
    await rest.patch("/operator/ops/model-config", json={"temperature": 0.3}, as_=admin)
    await rest.post("/operator/ops/releases", json={"version": "1.0.4", "notes": "a"}, as_=admin)
    await rest.patch("/operator/ops/model-config", json={"temperature": 0.9}, as_=admin)
    await rest.post(
        "/operator/ops/releases",
        json={"version": "1.0.5", "notes": "b", "includedEngines": ["upm"]},
        as_=admin,
    )
    # when
    rolled = await rest.post("/operator/ops/releases/rollback", json={"targetVersion": "1.0.4"}, as_=admin)
    listed = await rest.get("/operator/ops/releases", as_=admin)
    # then
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["restored"]["version"] == "1.0.4"
    assert (await rest.get("/operator/ops/model-config", as_=admin)).json()["temperature"] == 0.3
    versions = [entry["version"] for entry in listed.json()]
    assert versions[:2] == ["1.0.4", "1.0.5"]
    assert all(isinstance(entry["date"], int) for entry in listed.json())


async def test_a_rollback_to_an_unknown_version_is_404(rest, admin):
    # when
    response = await rest.post("/operator/ops/releases/rollback", json={"targetVersion": "9.9.9"}, as_=admin)
    # then
    assert (response.status_code, code(response)) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("role", "fields"),
    [
        (A, {"status", "latencyMs", "uptimeHours", "engines"}),
        (R, {"status", "latencyMs", "uptimeHours", "engines"}),
        (C, {"status", "latencyMs", "uptimeHours", "engines"}),
        (B, {"status"}),
    ],
)
async def test_health_shows_each_role_what_the_matrix_allows(rest, token, role, fields):
    # when
    response = await rest.get("/operator/ops/health", as_=token(role, **TOKENS[role]))
    # then
    assert response.status_code == 200
    assert set(response.json()) == fields
    if "engines" in fields:
        assert set(response.json()["engines"]) >= {"scenario", "upm", "insights", "missions"}


async def test_diagnostics_have_the_specs_shape_and_count_rest_calls(rest, admin):
    # given
    await rest.get("/operator/ops/limits", as_=admin)
    # when
    response = await rest.get("/operator/ops/diagnostics", as_=admin)
    # then
    body = response.json()
    assert set(body) >= {"cpu", "memory", "errorRate", "timeouts", "slowQueries"}
    assert body["operations"] >= 1
    assert any(slow["endpoint"] == "GET /operator/ops/limits" for slow in body["slowQueries"])


async def test_the_audit_log_filters_and_pages_with_a_cursor(rest, admin):
    # given: five changes
    for temperature in (0.1, 0.2, 0.3, 0.4, 0.5):
        await rest.patch("/operator/ops/model-config", json={"temperature": temperature}, as_=admin)
    # when
    first = await rest.get("/operator/ops/audit?action=update_config&first=2", as_=admin)
    cursor = first.json()["nextCursor"]
    second = await rest.get(f"/operator/ops/audit?action=update_config&first=2&after={cursor}", as_=admin)
    later = await rest.get("/operator/ops/audit?from=4102444800", as_=admin)  # 2100-01-01
    # then
    assert first.status_code == second.status_code == 200
    assert first.json()["hasNextPage"] is True and len(first.json()["items"]) == 2
    seqs = [e["seq"] for e in first.json()["items"] + second.json()["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 4
    assert all(e["category"] == "update_config" for e in first.json()["items"])
    assert later.json()["items"] == []


async def test_a_bad_audit_query_is_400(rest, admin):
    # when
    response = await rest.get("/operator/ops/audit?from=yesterday", as_=admin)
    cursor = await rest.get("/operator/ops/audit?after=not-a-cursor", as_=admin)
    # then
    assert (response.status_code, code(response)) == (400, "E_SCHEMA_MISMATCH")
    assert (cursor.status_code, code(cursor)) == (400, "E_SCHEMA_MISMATCH")


async def test_each_rest_call_of_an_engine_is_one_operation_and_the_excess_is_429(rest, gql, admin, token):
    # given: two operations per minute, shared by both transports
    await rest.patch("/operator/ops/limits", json={"aiCallsPerMinute": 2}, as_=admin)
    engine = token("engine", sub="metered-engine")
    # when
    first = await rest.get("/operator/ops/model-config", as_=engine)
    second = await gql("{ limits { aiCallsPerMinute } }", as_=engine)
    third = await rest.get("/operator/ops/features", as_=engine)
    # then
    assert first.status_code == 200 and "errors" not in second
    assert (third.status_code, code(third)) == (429, "RATE_LIMITED")
    assert 1 <= int(third.headers["Retry-After"]) <= 30
    assert third.json()["error"]["details"]["retryAfterSeconds"] >= 1
    # and operators are not metered
    assert (await rest.get("/operator/ops/limits", as_=admin)).status_code == 200


async def test_an_oversized_body_is_413_in_the_envelope(client_with, token):
    # given: a 1 KiB ceiling
    http = await client_with(max_body_bytes=1024)
    rest = await rest_client(http)
    # when
    response = await rest.post("/operator/upm/scenario/log", json={"userId": "u" * 2000}, as_=token("engine"))
    # then
    assert (response.status_code, code(response)) == (413, "E_SCHEMA_MISMATCH")


async def test_an_unknown_path_is_404_in_the_envelope(rest, admin):
    # when
    response = await rest.get("/operator/ops/nothing-here", as_=admin)
    # then
    assert (response.status_code, code(response)) == (404, "NOT_FOUND")


async def test_an_unexpected_failure_is_a_masked_500(rest, admin, monkeypatch):
    # given: a service that fails in a way nobody planned for
    from app.services.ops import limits as ops_limits

    async def broken(_ops):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(ops_limits, "read", broken)
    # when
    response = await rest.get("/operator/ops/limits", as_=admin)
    # then
    assert (response.status_code, code(response)) == (500, "INTERNAL_SERVER_ERROR")
    assert "secret" not in response.text


async def test_production_hides_the_openapi_document(client_with):
    # given
    prod = await client_with(env="production")
    # when
    response = await prod.get("/operator/openapi.json")
    # then
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_a_path_with_an_encoded_newline_is_404_in_the_envelope(rest, admin):
    # when (found by schemathesis: Starlette's route patterns do not match a newline)
    response = await rest.patch("/operator/ops/features/a%0Ab", json={"enabled": True}, as_=admin)
    # then
    assert (response.status_code, code(response)) == (404, "NOT_FOUND")


async def test_the_document_names_every_operation_its_roles_and_no_422(rest):
    # given
    document = rest.contract.document
    operations = [
        (path, method, op) for path, item in document["paths"].items() for method, op in item.items()
    ]
    # then
    assert document["openapi"].startswith("3.1")
    assert all("x-roles" in op for _, _, op in operations)
    assert all("422" not in op["responses"] for _, _, op in operations)
    assert document["paths"]["/operator/upm/scenario/log"]["post"]["x-roles"] == ["admin", "engine"]
    assert document["paths"]["/operator/ops/hot-reload"]["post"]["x-roles"] == ["admin", "country", "region"]
    assert {"400", "401", "403", "404", "413", "429", "500"} <= set(
        document["paths"]["/operator/ops/limits"]["patch"]["responses"]
    )


async def test_an_audited_change_carries_the_request_id_the_response_echoes(rest, admin):
    # given: a change sent without an X-Request-Id of its own
    changed = await rest.patch("/operator/ops/model-config", json={"temperature": 0.3}, as_=admin)
    # when
    audit = await rest.get("/operator/ops/audit?action=update_config&first=1", as_=admin)
    # then: the audit entry names the request by the id its response (and its log line) gave
    assert changed.headers["x-request-id"]
    assert audit.json()["items"][0]["requestId"] == changed.headers["x-request-id"]
