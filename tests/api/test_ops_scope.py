"""The ops §8 scope matrix, walked completely: every role by every ops operation.

| Operation      | Branch  | Country | Region  | Admin |   (ops-api-v2 §8)
| Model Config   | ❌      | ❌      | ❌      | ✅    |
| Feature Toggle | ❌      | ❌      | ⚠️ 일부 | ✅    |
| Hot Reload     | ❌      | ⚠️      | ⚠️      | ✅    |
| Release Create | ❌      | ❌      | ❌      | ✅    |
| Health Check   | ⚠️ 제한 | ⚠️      | ⚠️      | ✅    |

The partial rules: a region flips the regionFlippable toggles; a country hot-reloads content, a
region content, difficulty and scenario; branch sees health's status, country and region also
latency, uptime and engines. Releases, diagnostics and limit changes are admin's.

Engines read model config, features, limits and rulesets and send heartbeats, nothing more.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.services.upm.ruleset import DEFAULT_UPM_RULESET
from tests.conftest import error_codes

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
CREATE_RELEASE = 'mutation { createRelease(version: "1.0.0", notes: "baseline") { version } }'


def document(kind: str) -> dict[str, Any]:
    return DEFAULT_UPM_RULESET.document() | {"version": "2"} if kind == "upm" else {"version": "1"}


# operation name -> (GraphQL, the roles that may run it)
A, R, C, B, E = "admin", "region", "country", "branch", "engine"
OPERATIONS: dict[str, tuple[str, set[str]]] = {
    "modelConfig": ("{ modelConfig { model } }", {A, E}),
    "updateModelConfig": ("mutation { updateModelConfig(input: {temperature: 0.5}) { temperature } }", {A}),
    "features": ("{ features { key } }", {A, R, E}),
    "setFeatureToggle(regionFlippable)": (
        'mutation { setFeatureToggle(key: "quiz_auto_generate", enabled: true) { key } }',
        {A, R},
    ),
    "setFeatureToggle(adminOnly)": (
        'mutation { setFeatureToggle(key: "mission_auto_assign", enabled: false) { key } }',
        {A},
    ),
    "limits": ("{ limits { aiCallsPerMinute } }", {A, E}),
    "updateLimits": ("mutation { updateLimits(input: {aiCallsPerMinute: 120}) { aiCallsPerMinute } }", {A}),
    **{
        f"rulesets({kind})": (
            f"{{ rulesets(type: {kind}) {{ rulesetId }} }}",
            {A, E}
            | ({R} if kind in ("content", "difficulty", "scenario") else set())
            | ({C} if kind == "content" else set()),
        )
        for kind in TYPES
    },
    "uploadRuleset": (
        "mutation { uploadRuleset(input: "
        '{type: content, rulesetId: "content_new", document: {version: "9"}}) { rulesetId } }',
        {A},
    ),
    **{
        f"hotReload({kind})": (
            f'mutation {{ hotReload(type: {kind}, targetId: "{kind}_v1") {{ type }} }}',
            {A}
            | ({R} if kind in ("content", "difficulty", "scenario") else set())
            | ({C} if kind == "content" else set()),
        )
        for kind in TYPES
    },
    "releases": ("{ releases { version } }", {A}),
    "createRelease": ('mutation { createRelease(version: "1.1.0", notes: "n") { version } }', {A}),
    "rollbackRelease": ('mutation { rollbackRelease(targetVersion: "1.0.0") { restored { version } } }', {A}),
    "health(status)": ("{ health { status } }", {A, R, C, B}),
    "health(latencyMs, uptimeHours, engines)": (
        "{ health { latencyMs uptimeHours engines { upm } } }",
        {A, R, C},
    ),
    "health(engineDetails, activeRulesets)": (
        "{ health { engineDetails { engine } activeRulesets { type } } }",
        {A},
    ),
    "diagnostics": ("{ diagnostics { cpu } }", {A}),
    "engineHeartbeat": ("mutation { engineHeartbeat(engine: upm) { engine } }", {A, E}),
}

TOKENS = {
    A: {},
    R: {"region_id": "r_apac"},
    C: {"country_id": "c_kr"},
    B: {"branch_id": "b_seoul"},
    E: {},
}


@pytest.mark.parametrize("role", [A, R, C, B, E])
async def test_every_ops_operation_is_allowed_or_forbidden_exactly_as_the_matrix_says(
    gql, admin, token, role
):
    # given: a ruleset of every type to reload and a release to roll back to
    for kind in TYPES:
        body = await gql(
            UPLOAD,
            {"input": {"type": kind, "rulesetId": f"{kind}_v1", "document": document(kind)}},
            as_=admin,
        )
        assert "errors" not in body, body
    assert "errors" not in await gql(CREATE_RELEASE, as_=admin)
    caller = token(role, **TOKENS[role])
    # when: the role runs every operation
    outcomes = {}
    for name, (query, _allowed) in OPERATIONS.items():
        body = await gql(query, as_=caller)
        codes = error_codes(body)
        outcomes[name] = "allowed" if not codes else "FORBIDDEN" if set(codes) == {"FORBIDDEN"} else codes
    # then
    expected = {
        name: "allowed" if role in allowed else "FORBIDDEN" for name, (_, allowed) in OPERATIONS.items()
    }
    assert outcomes == expected
