"""Valid raw-log records (data-layer §3.1-3.3) and the operations that send and read them.

Every factory returns a fresh, valid record for the organisation of tests/org.py;
tests change one thing and look at the verdict.
"""

from __future__ import annotations

import copy
from typing import Any

SCOPES = {
    "u_kr1": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul", "teamId": "t_seoul_a"},
    "u_kr2": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_seoul", "teamId": "t_seoul_a"},
    "u_kr3": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_busan", "teamId": "t_busan_a"},
    "u_jp1": {"regionId": "r_apac", "countryId": "c_jp", "branchId": "b_tokyo", "teamId": "t_tokyo_a"},
    "u_de1": {"regionId": "r_emea", "countryId": "c_de", "branchId": "b_berlin", "teamId": "t_berlin_a"},
}
VERSION = {"moduleVersion": "mod-1.2.0", "scenarioVersion": "scn-3.1", "promptVersion": None}

RESULT = "accepted duplicates rejected skipped statuses errors { index id code message field }"
KINDS = {
    "events": ("logEvents", "EventLogInput"),
    "interactions": ("logInteractions", "InteractionLogInput"),
    "sessions": ("logSessions", "SessionLogInput"),
}


def mutation(kind: str, form: str) -> str:
    """The mutation for ``kind`` taking ``$records`` in the typed or the JSON form."""
    field, input_type = KINDS[kind]
    if form == "typed":
        return (
            f"mutation($records: [{input_type}!], $partial: Boolean! = false) "
            f"{{ {field}(records: $records, partial: $partial) {{ {RESULT} }} }}"
        )
    return (
        f"mutation($records: JSON, $partial: Boolean! = false) "
        f"{{ {field}(recordsJson: $records, partial: $partial) {{ {RESULT} }} }}"
    )


def event(n: int = 1, user: str = "u_kr1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventId": f"ev-{n:04d}",
        "timestamp": f"2026-03-02T09:{n % 60:02d}:00+09:00",
        "userId": user,
        "eventType": "module_start",
        "context": {"moduleId": "m_onboarding", "quizId": None, "scenarioId": None, "turnIndex": None},
        "version": dict(VERSION),
        "scope": dict(SCOPES[user]),
    }
    record.update(copy.deepcopy(fields))
    return record


def interaction(n: int = 1, user: str = "u_kr1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "interactionId": f"ia-{n:04d}",
        "sessionId": "ss-0001",
        "timestamp": f"2026-03-02T10:{n % 60:02d}:00Z",
        "userId": user,
        "engine": "saleslab",
        "input": "Do you have this in blue?",
        "output": "We do, and the matching scarf is on offer.",
        "metadata": {
            "difficultyLevel": 2,
            "personaId": "p_bargain_hunter",
            "traitActivation": ["price_sensitive"],
            "upsellTriggered": True,
        },
        "version": dict(VERSION),
        "scope": dict(SCOPES[user]),
    }
    record.update(copy.deepcopy(fields))
    return record


def session(n: int = 1, user: str = "u_kr1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sessionId": f"ss-{n:04d}",
        "userId": user,
        "engine": "saleslab",
        "startTime": "2026-03-02T10:00:00Z",
        "endTime": f"2026-03-02T10:{10 + n % 40:02d}:00Z",
        "durationSec": 600,
        "outcome": "success",
        "summary": {"turnCount": 8, "correctAnswers": None, "upsellAttempts": 2, "upsellSuccess": True},
        "version": dict(VERSION),
        "scope": dict(SCOPES[user]),
    }
    record.update(copy.deepcopy(fields))
    return record


FACTORIES = {"events": event, "interactions": interaction, "sessions": session}


async def send(
    gql: Any, bearer: str | None, kind: str, records: Any, *, form: str = "json", partial: bool = False
) -> dict[str, Any]:
    """The whole GraphQL answer of one log mutation."""
    variables = {"records": records, "partial": partial}
    body: dict[str, Any] = await gql(mutation(kind, form), variables, as_=bearer)
    return body


async def logged(
    gql: Any, bearer: str, kind: str, records: Any, *, form: str = "json", partial: bool = False
) -> dict[str, Any]:
    """The batch result of a log mutation that must not fail as a whole."""
    body = await send(gql, bearer, kind, records, form=form, partial=partial)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][KINDS[kind][0]]
    return result


EVENTS = """
query($userId: String, $eventType: String, $from: DateTime, $to: DateTime,
      $scope: ScopeFilterInput, $first: Int! = 50, $after: String) {
  events(userId: $userId, eventType: $eventType, from: $from, to: $to,
         scope: $scope, first: $first, after: $after) {
    edges { cursor node {
      eventId timestamp userId eventType
      context { moduleId quizId scenarioId turnIndex action }
      version { moduleVersion scenarioVersion promptVersion }
      scope { regionId countryId branchId teamId }
      receivedAt sentBy
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def stored_events(gql: Any, admin: str, **filters: Any) -> list[dict[str, Any]]:
    """Read event_log back through `events` as admin."""
    body = await gql(EVENTS, {"first": 100, **filters}, as_=admin)
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["events"]["edges"]]
