"""Every validation rule of data-layer §3 and §6, with its code, on both argument forms.

A valid record and a broken one are sent together with ``partial: true``: the
valid one is stored, the broken one is rejected on its own index. The typed
form (``records``) and the JSON form (``recordsJson``) go through one validator,
so each rule is asserted on both. What GraphQL's type system itself refuses on
the typed form (unknown fields, wrong scalar types) fails that whole request,
with the same code.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import error_codes
from tests.log_records import FACTORIES, KINDS, interaction, logged, mutation, send

Change = Callable[[dict[str, Any]], dict[str, Any]]
FORMS = ["json", "typed"]


def _parent(record: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, last = path.split(".")
    target = record
    for name in parents:
        target = target[name]
    return target, last


def drop(path: str) -> Change:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        target, last = _parent(record, path)
        del target[last]
        return record

    change.__name__ = f"drop {path}"
    return change


def put(path: str, value: Any, **more: Any) -> Change:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        for where, what in {path: value, **{k.replace("__", "."): v for k, v in more.items()}}.items():
            target, last = _parent(record, where)
            target[last] = copy.deepcopy(what)
        return record

    change.__name__ = f"{path}={value!r}"
    return change


def reward(action: str | None) -> Change:
    """A reward_claim event with this context.action."""
    return put("eventType", "reward_claim", context__action=action)


REJECTED_ON_BOTH_FORMS = [
    # scope (P-02): missing or null anywhere -> E_SCOPE_MISSING
    ("events", drop("scope"), "E_SCOPE_MISSING", "scope"),
    ("events", put("scope", None), "E_SCOPE_MISSING", "scope"),
    ("events", drop("scope.teamId"), "E_SCOPE_MISSING", "scope.teamId"),
    ("events", put("scope.branchId", None), "E_SCOPE_MISSING", "scope.branchId"),
    ("interactions", drop("scope"), "E_SCOPE_MISSING", "scope"),
    ("sessions", drop("scope.regionId"), "E_SCOPE_MISSING", "scope.regionId"),
    # version (P-01): missing -> E_VERSION_MISSING (null values are fine, see below)
    ("events", drop("version"), "E_VERSION_MISSING", "version"),
    ("events", put("version", None), "E_VERSION_MISSING", "version"),
    ("events", drop("version.promptVersion"), "E_VERSION_MISSING", "version.promptVersion"),
    ("interactions", drop("version.moduleVersion"), "E_VERSION_MISSING", "version.moduleVersion"),
    ("sessions", put("version", None), "E_VERSION_MISSING", "version"),
    # the scope is checked before the version: a record missing both names its scope
    ("events", put("scope", None, version=None), "E_SCOPE_MISSING", "scope"),
    # ids
    ("events", drop("eventId"), "E_SCHEMA_MISMATCH", "eventId"),
    ("events", put("eventId", None), "E_SCHEMA_MISMATCH", "eventId"),
    ("events", put("eventId", "has space"), "E_SCHEMA_MISMATCH", "eventId"),
    ("events", put("eventId", "x" * 65), "E_SCHEMA_MISMATCH", "eventId"),
    ("events", drop("userId"), "E_SCHEMA_MISMATCH", "userId"),
    ("events", put("userId", ""), "E_SCHEMA_MISMATCH", "userId"),
    ("events", put("userId", "u_kr1\n"), "E_SCHEMA_MISMATCH", "userId"),  # `$` once let this through
    ("events", put("scope.regionId", "r apac"), "E_SCHEMA_MISMATCH", "scope.regionId"),
    ("events", put("context.moduleId", "m/1"), "E_SCHEMA_MISMATCH", "context.moduleId"),
    ("interactions", drop("sessionId"), "E_SCHEMA_MISMATCH", "sessionId"),
    ("interactions", put("metadata.personaId", "p 1"), "E_SCHEMA_MISMATCH", "metadata.personaId"),
    # eventType must be in the allowed list
    ("events", put("eventType", "teleport"), "E_SCHEMA_MISMATCH", "eventType"),
    ("events", drop("eventType"), "E_SCHEMA_MISMATCH", "eventType"),
    ("events", put("eventType", "LOGIN"), "E_SCHEMA_MISMATCH", "eventType"),
    # timestamps: ISO 8601 with an offset
    ("events", put("timestamp", "2026-03-02T09:00:00"), "E_SCHEMA_MISMATCH", "timestamp"),
    ("events", put("timestamp", "2026-03-02"), "E_SCHEMA_MISMATCH", "timestamp"),
    ("events", put("timestamp", "yesterday"), "E_SCHEMA_MISMATCH", "timestamp"),
    ("events", drop("timestamp"), "E_SCHEMA_MISMATCH", "timestamp"),
    ("sessions", put("startTime", "2026-03-02 10:00"), "E_SCHEMA_MISMATCH", "startTime"),
    ("sessions", put("endTime", "2026-03-02T09:59:59Z"), "E_SCHEMA_MISMATCH", "endTime"),
    # enums of the spec
    ("interactions", put("engine", "learning"), "E_SCHEMA_MISMATCH", "engine"),
    ("interactions", drop("engine"), "E_SCHEMA_MISMATCH", "engine"),
    ("sessions", put("engine", "module"), "E_SCHEMA_MISMATCH", "engine"),
    ("sessions", put("outcome", "win"), "E_SCHEMA_MISMATCH", "outcome"),
    # counts and numbers
    ("events", put("context.turnIndex", -1), "E_SCHEMA_MISMATCH", "context.turnIndex"),
    ("sessions", put("summary.turnCount", -1), "E_SCHEMA_MISMATCH", "summary.turnCount"),
    ("sessions", put("summary.upsellAttempts", -2), "E_SCHEMA_MISMATCH", "summary.upsellAttempts"),
    ("sessions", put("summary.correctAnswers", -3), "E_SCHEMA_MISMATCH", "summary.correctAnswers"),
    ("sessions", put("durationSec", -0.5), "E_SCHEMA_MISMATCH", "durationSec"),
    ("sessions", drop("summary.turnCount"), "E_SCHEMA_MISMATCH", "summary.turnCount"),
    # required objects and fields
    ("interactions", drop("metadata"), "E_SCHEMA_MISMATCH", "metadata"),
    ("interactions", drop("metadata.upsellTriggered"), "E_SCHEMA_MISMATCH", "metadata.upsellTriggered"),
    ("interactions", drop("metadata.traitActivation"), "E_SCHEMA_MISMATCH", "metadata.traitActivation"),
    ("interactions", put("metadata.traitActivation", [""]), "E_SCHEMA_MISMATCH", "metadata.traitActivation"),
    ("interactions", drop("input"), "E_SCHEMA_MISMATCH", "input"),
    ("sessions", drop("summary"), "E_SCHEMA_MISMATCH", "summary"),
    ("sessions", drop("durationSec"), "E_SCHEMA_MISMATCH", "durationSec"),
    # text a database cannot store
    ("interactions", put("input", "a\x00b"), "E_SCHEMA_MISMATCH", "input"),
    ("interactions", put("output", "x" * 65_537), "E_SCHEMA_MISMATCH", "output"),
    ("events", put("version.promptVersion", "p\x00"), "E_SCHEMA_MISMATCH", "version.promptVersion"),
    # version strings
    ("events", put("version.moduleVersion", "v" * 65), "E_SCHEMA_MISMATCH", "version.moduleVersion"),
    ("events", put("version.scenarioVersion", " "), "E_SCHEMA_MISMATCH", "version.scenarioVersion"),
    # the reward convention: reward_claim carries xp:<n> or badge:<id>
    ("events", reward("points:5"), "E_SCHEMA_MISMATCH", "context.action"),
    ("events", reward("xp:-5"), "E_SCHEMA_MISMATCH", "context.action"),
    ("events", reward("xp:"), "E_SCHEMA_MISMATCH", "context.action"),
    ("events", reward("xp:1.5"), "E_SCHEMA_MISMATCH", "context.action"),
    ("events", reward("badge:"), "E_SCHEMA_MISMATCH", "context.action"),
    ("events", reward("badge:gold star"), "E_SCHEMA_MISMATCH", "context.action"),
    ("events", reward(None), "E_SCHEMA_MISMATCH", "context.action"),
]

ACCEPTED_ON_BOTH_FORMS = [
    ("events", put("version", {"moduleVersion": None, "scenarioVersion": None, "promptVersion": None})),
    ("events", drop("context")),
    ("events", put("context", {})),
    ("events", put("timestamp", "2026-03-02T00:00:00.123456Z")),
    ("events", put("timestamp", "2026-03-02T05:30:00+05:30")),
    ("events", reward("xp:50")),
    ("events", reward("xp:0")),
    ("events", reward("badge:gold_star")),
    ("events", put("eventType", "login", context__turnIndex=0)),
    ("interactions", drop("output")),
    ("interactions", put("metadata.difficultyLevel", None, metadata__traitActivation=[])),
    ("interactions", put("metadata.difficultyLevel", 2.5)),
    ("sessions", drop("outcome")),
    ("sessions", put("outcome", "partial", summary={"turnCount": 0})),
    ("sessions", put("durationSec", 0, endTime="2026-03-02T10:00:00Z")),
]

# Unknown fields and wrong scalar types: the JSON form rejects the record, GraphQL itself
# refuses the typed form's whole request. Both answer E_SCHEMA_MISMATCH.
REJECTED_BY_GRAPHQL_ON_THE_TYPED_FORM = [
    ("events", put("surprise", 1), "surprise"),
    ("events", put("context.mood", "happy"), "context.mood"),
    ("events", put("scope.floorId", "f_1"), "scope.floorId"),
    ("events", put("version.engineVersion", "1"), "version.engineVersion"),
    ("events", put("context.turnIndex", "3"), "context.turnIndex"),
    ("events", put("userId", 42), "userId"),
    ("events", put("context.turnIndex", 1.5), "context.turnIndex"),
    ("interactions", put("metadata.upsellTriggered", "yes"), "metadata.upsellTriggered"),
    ("interactions", put("metadata.traitActivation", [1]), "metadata.traitActivation"),
    ("interactions", put("metadata", "none"), "metadata"),
    ("sessions", put("durationSec", "600"), "durationSec"),
    ("sessions", put("summary.upsellSuccess", 1), "summary.upsellSuccess"),
]


def _id(case: Any) -> str:
    return getattr(case, "__name__", None) or str(case)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("kind", "change", "code", "field"), REJECTED_ON_BOTH_FORMS, ids=_id)
async def test_a_broken_record_is_rejected_with_its_code(gql, admin, form, kind, change, code, field):
    # given: one valid record and one with a single fault
    good, bad = FACTORIES[kind](1), change(FACTORIES[kind](2))
    # when
    result = await logged(gql, admin, kind, [good, bad], form=form, partial=True)
    # then: the fault is named on its index; the valid record is stored
    assert result["statuses"] == ["ACCEPTED", "REJECTED"]
    assert [(e["index"], e["code"], e["field"]) for e in result["errors"]] == [(1, code, field)]
    assert result["errors"][0]["message"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("kind", "change"), ACCEPTED_ON_BOTH_FORMS, ids=_id)
async def test_records_the_spec_allows_are_accepted(gql, admin, form, kind, change):
    # given
    record = change(FACTORIES[kind](1))
    # when
    result = await logged(gql, admin, kind, [record], form=form)
    # then
    assert result["statuses"] == ["ACCEPTED"], result["errors"]


@pytest.mark.parametrize(("kind", "change", "field"), REJECTED_BY_GRAPHQL_ON_THE_TYPED_FORM, ids=_id)
async def test_unknown_fields_and_wrong_types_are_schema_mismatches(gql, admin, kind, change, field):
    # given
    good, bad = FACTORIES[kind](1), change(FACTORIES[kind](2))
    # when
    as_json = await logged(gql, admin, kind, [good, bad], form="json", partial=True)
    typed = await send(gql, admin, kind, [good, bad], form="typed", partial=True)
    # then: the JSON form rejects the record; GraphQL refuses the typed request
    assert as_json["statuses"] == ["ACCEPTED", "REJECTED"]
    assert [(e["code"], e["field"]) for e in as_json["errors"]] == [("E_SCHEMA_MISMATCH", field)]
    assert error_codes(typed) == ["E_SCHEMA_MISMATCH"]
    assert typed["data"] is None


async def test_a_json_list_item_that_is_not_an_object_is_rejected_on_its_index(gql, admin):
    # when
    result = await logged(gql, admin, "events", [FACTORIES["events"](1), "login", None], partial=True)
    # then
    assert result["statuses"] == ["ACCEPTED", "REJECTED", "REJECTED"]
    assert {e["code"] for e in result["errors"]} == {"E_SCHEMA_MISMATCH"}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_both_forms_store_the_same_content(gql, admin, kind):
    # given: a record stored through the typed form
    record = FACTORIES[kind](1)
    first = await logged(gql, admin, kind, [record], form="typed")
    # when: the same record comes again through the JSON form
    again = await logged(gql, admin, kind, [record], form="json")
    # then: one validator, one canonical form: it is the same record
    assert first["statuses"] == ["ACCEPTED"]
    assert again["statuses"] == ["DUPLICATE"]


@pytest.mark.parametrize("settings_overrides", [{"event_types": ("login", "shift_start")}])
async def test_the_allowed_event_types_are_a_setting(gql, admin, settings_overrides):
    # given: a deployment that allows login and shift_start only
    records = [
        FACTORIES["events"](1, eventType="shift_start"),
        FACTORIES["events"](2, eventType="module_start"),
    ]
    # when
    result = await logged(gql, admin, "events", records, partial=True)
    # then
    assert result["statuses"] == ["ACCEPTED", "REJECTED"]
    assert result["errors"][0]["field"] == "eventType"
    assert "shift_start" in result["errors"][0]["message"]


async def test_a_lone_surrogate_refuses_the_request_and_stores_nothing(gql, admin):
    # given: JSON text whose string escapes half a UTF-16 pair, which no database stores and no
    # response could echo (RFC 7493 forbids it), beside a valid record, with partial: true
    records = [interaction(1), interaction(2, interactionId="half-a-pair-\ud800")]
    payload = json.dumps(
        {"query": mutation("interactions", "json"), "variables": {"records": records, "partial": True}}
    )
    # when
    response = await gql.http.post(
        "/graphql",
        content=payload,
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    )
    # then: a client error, and not even the valid record is stored (before: the valid record was
    # stored and the answer, echoing the bad id, failed to encode: HTTP 500)
    assert response.status_code == 400
    stored = await gql("{ interactions(first: 10) { nodes { interactionId } } }", as_=admin)
    assert stored["data"]["interactions"]["nodes"] == []
