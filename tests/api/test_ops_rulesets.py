"""Rulesets and hot reload (ops §3, upm §9): validated uploads, activation without restart,
failed reloads that keep the previous ruleset and mark the type degraded."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.services.ops.documents import content_hash
from app.services.upm.ruleset import DEFAULT_UPM_RULESET, DEFAULT_UPM_RULESET_ID
from tests.conftest import error_codes

UPLOAD = """
mutation($input: UploadRulesetInput!) {
  uploadRuleset(input: $input) { rulesetId type version active contentHash uploadedBy document }
}
"""
RELOAD = """
mutation($type: RulesetType!, $targetId: String!) {
  hotReload(type: $type, targetId: $targetId) {
    type targetId previousRulesetId active { type rulesetId version state lastError }
  }
}
"""
RULESETS = """
query($type: RulesetType!, $activeOnly: Boolean!) {
  rulesets(type: $type, activeOnly: $activeOnly) { rulesetId version active document }
}
"""
HEALTH = """
{ health { status engines { upm content }
  activeRulesets { type rulesetId state failedTargetId lastError } } }
"""
AUDIT_LOG = "{ auditLog(first: 50) { nodes { action target before after } } }"

BEHAVIOR_SCORE_V3 = copy.deepcopy(DEFAULT_UPM_RULESET.document()) | {"version": "3"}
BEHAVIOR_SCORE_V3["behaviorScore"] = {
    "aggregation": "mean",
    "emaAlpha": 0.5,
    "minTurns": 5,
    "weights": {"engineScore": 0.5, "upsellSuccess": 0.3, "objectionHandling": 0.2},
}


async def upload(gql, admin, kind, ruleset_id, document):
    return await gql(
        UPLOAD, {"input": {"type": kind, "rulesetId": ruleset_id, "document": document}}, as_=admin
    )


async def reload(gql, who, kind, target_id):
    return await gql(RELOAD, {"type": kind, "targetId": target_id}, as_=who)


async def active_of(gql, admin, kind):
    body = await gql(RULESETS, {"type": kind, "activeOnly": True}, as_=admin)
    return [r["rulesetId"] for r in body["data"]["rulesets"]]


def active_state(health_body, kind):
    return next(r for r in health_body["data"]["health"]["activeRulesets"] if r["type"] == kind)


async def test_the_default_upm_ruleset_is_seeded_and_active(gql, admin, token):
    # when
    body = await gql(RULESETS, {"type": "upm", "activeOnly": True}, as_=token("engine"))
    # then
    [ruleset] = body["data"]["rulesets"]
    assert ruleset["rulesetId"] == DEFAULT_UPM_RULESET_ID and ruleset["active"] is True
    assert ruleset["document"] == DEFAULT_UPM_RULESET.document()


async def test_a_valid_upm_ruleset_uploads_inactive(gql, admin):
    # when
    body = await upload(gql, admin, "upm", "behavior_score_v3", BEHAVIOR_SCORE_V3)
    # then
    assert "errors" not in body, body
    stored = body["data"]["uploadRuleset"]
    assert (stored["rulesetId"], stored["type"], stored["version"], stored["active"]) == (
        "behavior_score_v3",
        "upm",
        "3",
        False,
    )
    assert stored["contentHash"] == content_hash(BEHAVIOR_SCORE_V3)
    assert await active_of(gql, admin, "upm") == [DEFAULT_UPM_RULESET_ID]


@pytest.mark.parametrize(
    ("kind", "document", "problem"),
    [
        ("upm", BEHAVIOR_SCORE_V3 | {"surprise": 1}, "surprise"),
        (
            "upm",
            {
                **BEHAVIOR_SCORE_V3,
                "quizThresholds": {"strengthAccuracy": 0.4, "weaknessAccuracy": 0.6, "minAttempts": 2},
            },
            "weaknessAccuracy",
        ),
        ("upm", {k: v for k, v in BEHAVIOR_SCORE_V3.items() if k != "skillWeights"}, "skillWeights"),
        ("content", {"modules": []}, "version"),
        ("content", {"version": 3}, "version"),
        ("scenario", ["not", "an", "object"], "JSON object"),
    ],
)
async def test_an_invalid_ruleset_is_refused_and_not_stored(gql, admin, kind, document, problem):
    # when
    body = await upload(gql, admin, kind, "bad_v1", document)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert problem in body["errors"][0]["message"]
    listed = await gql(RULESETS, {"type": kind, "activeOnly": False}, as_=admin)
    assert "bad_v1" not in [r["rulesetId"] for r in listed["data"]["rulesets"]]


async def test_ruleset_ids_are_never_reused(gql, admin):
    # given
    assert "errors" not in await upload(gql, admin, "content", "content_v1", {"version": "1"})
    # when
    again = await upload(gql, admin, "content", "content_v1", {"version": "2"})
    # then
    assert error_codes(again) == ["E_SCHEMA_MISMATCH"]
    listed = await gql(RULESETS, {"type": "content", "activeOnly": False}, as_=admin)
    assert [r["version"] for r in listed["data"]["rulesets"]] == ["1"]


async def test_hot_reload_activates_without_restart(gql, admin, token):
    # given
    await upload(gql, admin, "upm", "behavior_score_v3", BEHAVIOR_SCORE_V3)
    # when: the spec's upm §9 example
    body = await reload(gql, admin, "upm", "behavior_score_v3")
    # then: the answer, the engines' view and health all show it
    assert body["data"]["hotReload"] == {
        "type": "upm",
        "targetId": "behavior_score_v3",
        "previousRulesetId": DEFAULT_UPM_RULESET_ID,
        "active": {
            "type": "upm",
            "rulesetId": "behavior_score_v3",
            "version": "3",
            "state": "ok",
            "lastError": None,
        },
    }
    engine_view = await gql(RULESETS, {"type": "upm", "activeOnly": True}, as_=token("engine"))
    assert engine_view["data"]["rulesets"][0]["document"]["behaviorScore"]["aggregation"] == "mean"
    health = await gql(HEALTH, as_=admin)
    assert active_state(health, "upm")["rulesetId"] == "behavior_score_v3"


@pytest.mark.parametrize(
    ("target", "reason"),
    [("behavior_score_v9", "no ruleset"), ("content_v1", "is a content ruleset"), ("x" * 300, "no ruleset")],
)
async def test_a_failed_reload_keeps_the_previous_ruleset_and_degrades_the_type(gql, admin, target, reason):
    # given: v3 is active; content_v1 exists but is not a upm ruleset
    await upload(gql, admin, "upm", "behavior_score_v3", BEHAVIOR_SCORE_V3)
    await upload(gql, admin, "content", "content_v1", {"version": "1"})
    await reload(gql, admin, "upm", "behavior_score_v3")
    # when
    body = await reload(gql, admin, "upm", target)
    # then: E_RELOAD_FAILED, and v3 stays active
    assert error_codes(body) == ["E_RELOAD_FAILED"]
    extensions = body["errors"][0]["extensions"]
    assert extensions == {
        "code": "E_RELOAD_FAILED",
        "type": "upm",
        "targetId": target,
        "activeRulesetId": "behavior_score_v3",
    }
    assert reason in body["errors"][0]["message"]
    assert await active_of(gql, admin, "upm") == ["behavior_score_v3"]
    # and health shows the type degraded until a reload succeeds
    health = await gql(HEALTH, as_=admin)
    assert health["data"]["health"]["status"] == "degraded"
    assert health["data"]["health"]["engines"]["upm"] == "degraded"
    state = active_state(health, "upm")
    assert (state["rulesetId"], state["state"], state["failedTargetId"]) == (
        "behavior_score_v3",
        "degraded",
        target[:128],  # an over-long id is kept as its first 128 characters
    )
    assert reason in state["lastError"]
    # when
    recovered = await reload(gql, admin, "upm", DEFAULT_UPM_RULESET_ID)
    # then
    assert recovered["data"]["hotReload"]["active"]["state"] == "ok"
    health = await gql(HEALTH, as_=admin)
    assert health["data"]["health"]["engines"]["upm"] != "degraded"
    assert active_state(health, "upm")["lastError"] is None


async def test_a_stored_document_that_no_longer_validates_cannot_be_reloaded(gql, admin, app):
    # given: a upm document slipped into the table around the upload validation
    broken = BEHAVIOR_SCORE_V3 | {"version": "4", "skillWeights": {"scenario": {"upsell": 5}}}
    async with app.state.db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ruleset (ruleset_id, engine_type, declared_version, document, content_hash, "
                "uploaded_at, uploaded_by) VALUES (:id, 'upm', '4', :doc, :hash, :at, 'intruder')"
            ),
            {
                "id": "behavior_score_v4",
                "doc": json.dumps(broken),
                "hash": content_hash(broken),
                "at": datetime.now(UTC),
            },
        )
    # when
    body = await reload(gql, admin, "upm", "behavior_score_v4")
    # then
    assert error_codes(body) == ["E_RELOAD_FAILED"]
    assert "skillWeights" in body["errors"][0]["message"]
    assert await active_of(gql, admin, "upm") == [DEFAULT_UPM_RULESET_ID]


async def test_rulesets_are_append_only_in_the_database(gql, admin, app):
    # when / then: an edit of a stored ruleset is refused by the database itself
    with pytest.raises(Exception, match="append-only"):
        async with app.state.db.engine.begin() as conn:
            await conn.execute(text("UPDATE ruleset SET declared_version = 'x'"))
    with pytest.raises(Exception, match="append-only"):
        async with app.state.db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM ruleset"))


async def test_region_and_country_reload_their_documented_types_only(gql, admin, token):
    # given
    for kind in ("content", "difficulty", "upm"):
        await upload(gql, admin, kind, f"{kind}_v7", BEHAVIOR_SCORE_V3 if kind == "upm" else {"version": "7"})
    region, country = token("region", region_id="r_apac"), token("country", country_id="c_kr")
    # when
    outcomes = {
        (who, kind): error_codes(await reload(gql, tok, kind, f"{kind}_v7")) or "ok"
        for who, tok in (("region", region), ("country", country))
        for kind in ("content", "difficulty", "upm")
    }
    # then
    assert outcomes == {
        ("region", "content"): "ok",
        ("region", "difficulty"): "ok",
        ("region", "upm"): ["FORBIDDEN"],
        ("country", "content"): "ok",
        ("country", "difficulty"): ["FORBIDDEN"],
        ("country", "upm"): ["FORBIDDEN"],
    }
    assert await active_of(gql, admin, "upm") == [DEFAULT_UPM_RULESET_ID]


async def test_uploads_and_reloads_are_audited_including_failures(gql, admin):
    # when
    await upload(gql, admin, "upm", "behavior_score_v3", BEHAVIOR_SCORE_V3)
    await reload(gql, admin, "upm", "behavior_score_v3")
    await reload(gql, admin, "upm", "missing_v1")
    # then
    entries = (await gql(AUDIT_LOG, as_=admin))["data"]["auditLog"]["nodes"]
    ops = [e for e in entries if e["action"] in ("upload_ruleset", "reload")]
    failed, reloaded, uploaded = ops  # newest first
    assert (uploaded["action"], uploaded["target"]) == ("upload_ruleset", "ruleset:behavior_score_v3")
    assert uploaded["after"]["contentHash"] == content_hash(BEHAVIOR_SCORE_V3)
    assert (reloaded["action"], reloaded["target"]) == ("reload", "ruleset:upm")
    assert reloaded["before"] == {"activeRulesetId": DEFAULT_UPM_RULESET_ID, "state": "ok"}
    assert reloaded["after"] == {"activeRulesetId": "behavior_score_v3", "state": "ok"}
    assert failed["after"]["state"] == "degraded" and failed["after"]["failedTargetId"] == "missing_v1"
    assert failed["after"]["activeRulesetId"] == "behavior_score_v3"
