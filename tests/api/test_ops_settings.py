"""Model config, feature toggles and limits (ops §1, §2, §6): read, change, refuse, audit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import error_codes

MODEL_CONFIG = "{ modelConfig { model temperature maxTokens toneProfile language enabled updatedBy } }"
UPDATE_MODEL_CONFIG = """
mutation($input: UpdateModelConfigInput!) {
  updateModelConfig(input: $input) { model temperature maxTokens toneProfile language enabled updatedBy }
}
"""
FEATURES = "{ features { key enabled description regionFlippable } }"
SET_TOGGLE = """
mutation($key: String!, $enabled: Boolean!) {
  setFeatureToggle(key: $key, enabled: $enabled) { key enabled regionFlippable updatedBy }
}
"""
LIMITS = "{ limits { aiCallsPerMinute fileUploadLimitMb maxConcurrentSessions } }"
UPDATE_LIMITS = """
mutation($input: UpdateLimitsInput!) {
  updateLimits(input: $input) { aiCallsPerMinute fileUploadLimitMb maxConcurrentSessions }
}
"""
AUDIT_LOG = """
query($action: String) {
  auditLog(action: $action, first: 50) { nodes { action target before after actorSub actorRole requestId } }
}
"""
SPEC_MODEL_CONFIG = {
    "model": "gpt-5.1",
    "temperature": 0.4,
    "maxTokens": 4096,
    "toneProfile": "professional",
    "language": "auto",
    "enabled": True,
}


def _without_stamp(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "updatedBy"}


async def _audit(gql, admin, action):
    """Entries with exactly this action (the auditLog filter takes whole §7.1 categories)."""
    body = await gql(AUDIT_LOG, {"action": action}, as_=admin)
    assert "errors" not in body, body
    return [entry for entry in body["data"]["auditLog"]["nodes"] if entry["action"] == action]


async def test_defaults_are_the_spec_examples(gql, admin, token):
    # when
    config = await gql(MODEL_CONFIG, as_=token("engine"))
    features = await gql(FEATURES, as_=token("engine"))
    limits = await gql(LIMITS, as_=admin)
    # then
    assert _without_stamp(config["data"]["modelConfig"]) == SPEC_MODEL_CONFIG
    assert {f["key"]: f["enabled"] for f in features["data"]["features"]} == {
        "mission_auto_assign": True,
        "insight_generation": True,
        "quiz_auto_generate": False,
        "content_ai_transform": True,
    }
    assert limits["data"]["limits"] == {
        "aiCallsPerMinute": 60,
        "fileUploadLimitMb": 200,
        "maxConcurrentSessions": 30,
    }


async def test_model_config_partial_update_keeps_the_rest(gql, admin, token):
    # when: the spec's §1.2 example
    patch = {"model": "gpt-5.1", "temperature": 0.2, "toneProfile": "coaching", "language": "ko"}
    body = await gql(UPDATE_MODEL_CONFIG, {"input": patch}, as_=admin)
    # then
    assert "errors" not in body, body
    expected = SPEC_MODEL_CONFIG | patch
    assert _without_stamp(body["data"]["updateModelConfig"]) == expected
    read = await gql(MODEL_CONFIG, as_=token("engine"))
    assert _without_stamp(read["data"]["modelConfig"]) == expected
    assert read["data"]["modelConfig"]["updatedBy"] == "admin-test"


@pytest.mark.parametrize(
    "patch",
    [
        {"temperature": 2.01},
        {"temperature": -0.1},
        {"maxTokens": 0},
        {"maxTokens": 10_000_000},
        {"model": "my-own-model"},
        {"toneProfile": "sarcastic"},
        {"language": "klingon"},
        {"model": None},
        {},
        {"temperature": 0.5, "toneProfile": "sarcastic"},  # one bad field refuses the whole patch
    ],
)
async def test_invalid_model_config_is_refused_and_changes_nothing(gql, admin, patch):
    # when
    body = await gql(UPDATE_MODEL_CONFIG, {"input": patch}, as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    read = await gql(MODEL_CONFIG, as_=admin)
    assert _without_stamp(read["data"]["modelConfig"]) == SPEC_MODEL_CONFIG
    assert await _audit(gql, admin, "update_config") == []


async def test_toggles_carry_description_and_region_policy(gql, admin):
    body = await gql(FEATURES, as_=admin)
    toggles = {f["key"]: f for f in body["data"]["features"]}
    assert {k for k, f in toggles.items() if f["regionFlippable"]} == {
        "quiz_auto_generate",
        "content_ai_transform",
    }
    assert all(f["description"] for f in toggles.values())


async def test_admin_flips_any_toggle(gql, admin, token):
    # when
    body = await gql(SET_TOGGLE, {"key": "mission_auto_assign", "enabled": False}, as_=admin)
    # then
    assert body["data"]["setFeatureToggle"]["enabled"] is False
    read = await gql(FEATURES, as_=token("engine"))
    assert {f["key"]: f["enabled"] for f in read["data"]["features"]}["mission_auto_assign"] is False


async def test_region_flips_only_region_flippable_toggles(gql, admin, token):
    region = token("region", region_id="r_apac")
    # when
    allowed = await gql(SET_TOGGLE, {"key": "quiz_auto_generate", "enabled": True}, as_=region)
    refused = await gql(SET_TOGGLE, {"key": "insight_generation", "enabled": False}, as_=region)
    # then
    assert allowed["data"]["setFeatureToggle"] == {
        "key": "quiz_auto_generate",
        "enabled": True,
        "regionFlippable": True,
        "updatedBy": "region-test",
    }
    assert error_codes(refused) == ["FORBIDDEN"]
    read = await gql(FEATURES, as_=admin)
    assert {f["key"]: f["enabled"] for f in read["data"]["features"]}["insight_generation"] is True


async def test_unknown_toggle_is_not_found(gql, admin):
    body = await gql(SET_TOGGLE, {"key": "teleportation", "enabled": True}, as_=admin)
    assert error_codes(body) == ["NOT_FOUND"]


async def test_limits_partial_update(gql, admin, token):
    # when
    body = await gql(UPDATE_LIMITS, {"input": {"aiCallsPerMinute": 120}}, as_=admin)
    # then
    expected = {"aiCallsPerMinute": 120, "fileUploadLimitMb": 200, "maxConcurrentSessions": 30}
    assert body["data"]["updateLimits"] == expected
    assert (await gql(LIMITS, as_=token("engine")))["data"]["limits"] == expected


@pytest.mark.parametrize(
    "patch",
    [{"aiCallsPerMinute": 0}, {"fileUploadLimitMb": -1}, {"maxConcurrentSessions": 10_001}, {}],
)
async def test_invalid_limits_are_refused_and_change_nothing(gql, admin, patch):
    body = await gql(UPDATE_LIMITS, {"input": patch}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    read = await gql(LIMITS, as_=admin)
    assert read["data"]["limits"] == {
        "aiCallsPerMinute": 60,
        "fileUploadLimitMb": 200,
        "maxConcurrentSessions": 30,
    }


async def test_every_settings_change_appends_an_audit_entry(gql, admin, token):
    # given
    region = token("region", sub="region-op", region_id="r_apac")
    # when
    await gql(UPDATE_MODEL_CONFIG, {"input": {"temperature": 0.9}}, as_=admin)
    await gql(SET_TOGGLE, {"key": "content_ai_transform", "enabled": False}, as_=region)
    await gql(UPDATE_LIMITS, {"input": {"maxConcurrentSessions": 5}}, as_=admin)
    # then
    [config] = await _audit(gql, admin, "update_config")
    [toggle] = await _audit(gql, admin, "set_feature_toggle")
    [limits] = await _audit(gql, admin, "update_limits")
    assert config["target"] == "model_config"
    assert (config["before"]["temperature"], config["after"]["temperature"]) == (0.4, 0.9)
    assert config["actorSub"] == "admin-test" and config["requestId"]
    assert toggle["target"] == "feature:content_ai_transform"
    assert (toggle["before"], toggle["after"]) == ({"enabled": True}, {"enabled": False})
    assert (toggle["actorSub"], toggle["actorRole"]) == ("region-op", "region")
    assert limits["target"] == "limits"
    assert (limits["before"]["maxConcurrentSessions"], limits["after"]["maxConcurrentSessions"]) == (30, 5)


async def test_a_change_whose_audit_entry_fails_is_rolled_back(gql, admin, monkeypatch):
    # given: the audit log cannot append
    from app.services import audit

    def broken(*_args, **_kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit.AuditLog, "append", broken)
    # when
    body = await gql(UPDATE_LIMITS, {"input": {"aiCallsPerMinute": 1}}, as_=admin)
    # then: no change without its entry
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    monkeypatch.undo()
    assert (await gql(LIMITS, as_=admin))["data"]["limits"]["aiCallsPerMinute"] == 60
