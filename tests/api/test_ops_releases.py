"""Releases and rollback (ops §4): snapshots, semantic versions, atomic restore, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.services.upm.ruleset import DEFAULT_UPM_RULESET, DEFAULT_UPM_RULESET_ID
from tests.conftest import error_codes

CREATE = """
mutation($version: String!, $notes: String!, $engines: [String!]) {
  createRelease(version: $version, notes: $notes, includedEngines: $engines) {
    version kind notes includedEngines date createdAt current snapshot
  }
}
"""
ROLLBACK = """
mutation($target: String!) {
  rollbackRelease(targetVersion: $target) {
    restored { version kind current }
    entry { version kind current rolledBackFrom notes }
  }
}
"""
RELEASES = "{ releases { version kind current date createdAt rolledBackFrom } }"
SNAPSHOTS = "{ releases { snapshot } }"
STATE = """
{
  modelConfig { model temperature maxTokens toneProfile language enabled }
  features { key enabled }
  limits { aiCallsPerMinute fileUploadLimitMb maxConcurrentSessions }
  health { activeRulesets { type rulesetId state } }
}
"""
UPDATE_MODEL_CONFIG = (
    "mutation($input: UpdateModelConfigInput!) { updateModelConfig(input: $input) { model } }"
)
UPDATE_LIMITS = "mutation($input: UpdateLimitsInput!) { updateLimits(input: $input) { aiCallsPerMinute } }"
SET_TOGGLE = "mutation($key: String!, $on: Boolean!) { setFeatureToggle(key: $key, enabled: $on) { key } }"
UPLOAD = "mutation($input: UploadRulesetInput!) { uploadRuleset(input: $input) { rulesetId } }"
RELOAD = "mutation($type: RulesetType!, $id: String!) { hotReload(type: $type, targetId: $id) { type } }"
AUDIT_LOG = "{ auditLog(first: 50) { nodes { action target before after } } }"


async def ok(gql, admin, query, variables=None):
    body = await gql(query, variables, as_=admin)
    assert "errors" not in body, body
    return body["data"]


async def state(gql, admin):
    data = await ok(gql, admin, STATE)
    data["health"] = {r["type"]: (r["rulesetId"], r["state"]) for r in data["health"]["activeRulesets"]}
    return data


async def change_everything(gql, admin, n):
    """A distinct value of every setting and ruleset for each n."""
    await ok(
        gql,
        admin,
        UPDATE_MODEL_CONFIG,
        {
            "input": {
                "model": ["gpt-4o", "gpt-5-mini"][n % 2],
                "temperature": 1.0 + n / 10,
                "maxTokens": 1000 + n,
                "toneProfile": ["friendly", "neutral"][n % 2],
                "language": ["ko", "ja"][n % 2],
                "enabled": n % 2 == 1,
            }
        },
    )
    await ok(
        gql,
        admin,
        UPDATE_LIMITS,
        {
            "input": {
                "aiCallsPerMinute": 100 + n,
                "fileUploadLimitMb": 50 + n,
                "maxConcurrentSessions": 10 + n,
            }
        },
    )
    for key in ("mission_auto_assign", "insight_generation", "quiz_auto_generate", "content_ai_transform"):
        await ok(gql, admin, SET_TOGGLE, {"key": key, "on": n % 2 == 1})
    upm = DEFAULT_UPM_RULESET.document() | {"version": f"{n}"}
    for kind, document in (("upm", upm), ("content", {"version": f"{n}"}), ("system", {"version": f"{n}"})):
        await ok(
            gql, admin, UPLOAD, {"input": {"type": kind, "rulesetId": f"{kind}_{n}", "document": document}}
        )
        await ok(gql, admin, RELOAD, {"type": kind, "id": f"{kind}_{n}"})


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-beta", "01.0.0", "1.0.0.0", ""])
async def test_versions_must_be_semantic(gql, admin, version):
    body = await gql(CREATE, {"version": version, "notes": "n"}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert (await ok(gql, admin, RELEASES))["releases"] == []


async def test_versions_are_unique_and_increasing(gql, admin):
    # given: the spec's §4.1 history
    await ok(gql, admin, CREATE, {"version": "1.0.4", "notes": "Updated difficulty rules"})
    await ok(gql, admin, CREATE, {"version": "1.0.5", "notes": "Added new mission templates"})
    # when
    again = await gql(CREATE, {"version": "1.0.5", "notes": "again"}, as_=admin)
    older = await gql(CREATE, {"version": "1.0.3", "notes": "older"}, as_=admin)
    bad_engine = await gql(CREATE, {"version": "1.0.6", "notes": "n", "engines": ["teleporter"]}, as_=admin)
    newer = await gql(
        CREATE,
        {
            "version": "1.0.10",
            "notes": "Insight scoring adjustments",
            "engines": ["insights", "content", "missions"],
        },
        as_=admin,
    )
    # then
    assert error_codes(again) == error_codes(older) == error_codes(bad_engine) == ["E_SCHEMA_MISMATCH"]
    assert newer["data"]["createRelease"]["includedEngines"] == ["insights", "content", "missions"]
    releases = (await ok(gql, admin, RELEASES))["releases"]
    assert [(r["version"], r["current"]) for r in releases] == [
        ("1.0.4", False),
        ("1.0.5", False),
        ("1.0.10", True),
    ]


async def test_a_release_snapshots_every_setting_with_its_date(gql, admin):
    # given
    before = datetime.now(UTC).timestamp()
    # when
    release = (await ok(gql, admin, CREATE, {"version": "1.0.0", "notes": "first", "engines": ["upm"]}))[
        "createRelease"
    ]
    # then
    assert before - 1 <= release["date"] <= datetime.now(UTC).timestamp() + 1
    assert datetime.fromisoformat(release["createdAt"]).timestamp() == pytest.approx(release["date"], abs=1)
    assert (release["kind"], release["current"]) == ("release", True)
    snapshot = release["snapshot"]
    assert snapshot["modelConfig"]["model"] == "gpt-5.1"
    assert snapshot["limits"] == {
        "aiCallsPerMinute": 60,
        "fileUploadLimitMb": 200,
        "maxConcurrentSessions": 30,
    }
    assert snapshot["features"]["quiz_auto_generate"] is False
    assert snapshot["rulesets"]["upm"] == DEFAULT_UPM_RULESET_ID
    assert set(snapshot["rulesets"]) == {
        "scenario",
        "prompt",
        "difficulty",
        "content",
        "gamification",
        "upm",
        "insights",
        "mission",
        "system",
    }


async def test_rollback_restores_every_setting_and_ruleset(gql, admin):
    # given: 1.0.0 is the defaults, 1.1.0 changes everything, and more changes after it
    defaults = await state(gql, admin)
    await ok(gql, admin, CREATE, {"version": "1.0.0", "notes": "defaults"})
    await change_everything(gql, admin, 1)
    release_1_1 = await state(gql, admin)
    await ok(gql, admin, CREATE, {"version": "1.1.0", "notes": "everything changed"})
    await change_everything(gql, admin, 2)
    assert await state(gql, admin) not in (defaults, release_1_1)
    # when
    body = await ok(gql, admin, ROLLBACK, {"target": "1.0.0"})
    # then: every value is the release's
    assert await state(gql, admin) == defaults
    assert body["rollbackRelease"] == {
        "restored": {"version": "1.0.0", "kind": "release", "current": True},
        "entry": {
            "version": "1.0.0",
            "kind": "rollback",
            "current": False,
            "rolledBackFrom": "1.1.0",
            "notes": "rollback to 1.0.0 (from 1.1.0)",
        },
    }
    # and the history grew; nothing was rewritten
    releases = (await ok(gql, admin, RELEASES))["releases"]
    assert [(r["version"], r["kind"], r["current"]) for r in releases] == [
        ("1.0.0", "release", True),
        ("1.1.0", "release", False),
        ("1.0.0", "rollback", False),
    ]
    # when: forward again
    await ok(gql, admin, ROLLBACK, {"target": "1.1.0"})
    # then
    assert await state(gql, admin) == release_1_1
    assert [r["current"] for r in (await ok(gql, admin, RELEASES))["releases"]] == [False, True, False, False]


async def test_rollback_to_an_unknown_version_is_not_found(gql, admin):
    body = await gql(ROLLBACK, {"target": "9.9.9"}, as_=admin)
    assert error_codes(body) == ["NOT_FOUND"]


async def test_a_rollback_that_cannot_restore_everything_restores_nothing(gql, admin, app):
    # given: a release whose snapshot names a ruleset that does not exist (its model config comes first)
    await ok(gql, admin, CREATE, {"version": "1.0.0", "notes": "defaults"})
    before = await state(gql, admin)
    snapshot = (await ok(gql, admin, SNAPSHOTS))["releases"][0]["snapshot"]
    snapshot["modelConfig"]["temperature"] = 1.5
    snapshot["rulesets"]["upm"] = "ghost_v1"
    async with app.state.db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO release_history (kind, version, notes, included_engines, snapshot, created_at, "
                "created_by) VALUES ('release', '2.0.0', 'broken', '[]', :snapshot, :at, 'intruder')"
            ),
            {"snapshot": json.dumps(snapshot), "at": datetime.now(UTC)},
        )
    # when
    body = await gql(ROLLBACK, {"target": "2.0.0"}, as_=admin)
    # then
    assert error_codes(body) == ["E_RELOAD_FAILED"]
    assert "ghost_v1" in body["errors"][0]["message"]
    assert await state(gql, admin) == before
    assert [r["kind"] for r in (await ok(gql, admin, RELEASES))["releases"]] == ["release", "release"]


async def test_a_rollback_failing_at_its_last_step_restores_nothing(gql, admin, monkeypatch):
    # given
    await ok(gql, admin, CREATE, {"version": "1.0.0", "notes": "defaults"})
    await change_everything(gql, admin, 1)
    changed = await state(gql, admin)
    from app.services import audit

    def broken(*_args, **_kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit.AuditLog, "append", broken)
    # when: everything is restored, then the audit append fails
    body = await gql(ROLLBACK, {"target": "1.0.0"}, as_=admin)
    monkeypatch.undo()
    # then
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert await state(gql, admin) == changed
    assert len((await ok(gql, admin, RELEASES))["releases"]) == 1


async def test_the_release_history_is_append_only_in_the_database(gql, admin, app):
    await ok(gql, admin, CREATE, {"version": "1.0.0", "notes": "first"})
    for statement in ("UPDATE release_history SET notes = 'rewritten'", "DELETE FROM release_history"):
        with pytest.raises(Exception, match="append-only"):
            async with app.state.db.engine.begin() as conn:
                await conn.execute(text(statement))
    assert (await ok(gql, admin, RELEASES))["releases"][0]["version"] == "1.0.0"


async def test_releases_and_rollbacks_are_audited(gql, admin):
    # when
    await ok(gql, admin, CREATE, {"version": "1.0.0", "notes": "first"})
    await ok(gql, admin, UPDATE_LIMITS, {"input": {"aiCallsPerMinute": 7}})
    await ok(gql, admin, ROLLBACK, {"target": "1.0.0"})
    # then
    entries = (await ok(gql, admin, AUDIT_LOG))["auditLog"]["nodes"]
    rollback = next(e for e in entries if e["action"] == "rollback_release")
    publish = next(e for e in entries if e["action"] == "publish")
    assert (
        publish["target"] == "release:1.0.0"
        and publish["after"]["snapshot"]["limits"]["aiCallsPerMinute"] == 60
    )
    assert rollback["target"] == "release:1.0.0"
    assert rollback["before"]["snapshot"]["limits"]["aiCallsPerMinute"] == 7
    assert rollback["after"]["snapshot"]["limits"]["aiCallsPerMinute"] == 60
