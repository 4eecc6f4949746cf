"""A small hand-made raw-log fixture for the analytics tests, loaded through the ingestion API.

    r_apac ─ c_kr ─ b_seoul ─ t_seoul_a: u_kr1, u_kr2
           │      └ b_busan ─ t_busan_a: u_kr3
           └ c_jp ─ b_tokyo ─ t_tokyo_a: u_jp1
    r_emea ─ c_de ─ b_berlin ─ t_berlin_a: u_de1

Two UTC days, D1 and D2. Per user, what the snapshot should hold (worked out by hand):

D1  user   login  mod start/done  quiz turns/correct     saleslab attempts/success  reward
    u_kr1  yes    2/1             10/7 pass (7/10=0.7)   2/true                     xp:100, badge:starter
    u_kr2  yes    2/1             10/6 fail              1/false                    -
    u_kr3  no     1/1             -                      0/null (not attempted)     xp:50
    u_jp1  yes    0/0             0/0 fail (no turns)    3/true                     -
    u_de1  yes    0/1             -                      -                          -
D2  u_kr1  yes    0/1             -                      -                          xp:20, badge:alpha
    u_jp1  yes    0/0             5/5 pass               -                          -

Latest record per user and day (its versions become the snapshot's):
    D1 u_kr1 saleslab 11:00 (m1.0 s2.0 p2.0)   u_kr2 saleslab 11:30 (m1.0 s1.0 p1.0)
       u_kr3 interaction 12:00 (m1.0 s1.0 p3.0)   u_de1 module_complete 09:00 (m2.0 s1.0 p1.0)
       u_jp1 login 15:30Z (m1.0 s1.0 p1.0), sent as 00:30+09:00 on D2: it counts on D1 (UTC day)
    D2 u_kr1 reward 08:41 (m1.1 s1.0 p1.0)     u_jp1 quiz 09:30 (m1.0 s1.0 p1.0)
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

D1 = "2026-03-02"
D2 = "2026-03-03"

SCOPES = {
    "u_kr1": ("r_apac", "c_kr", "b_seoul", "t_seoul_a"),
    "u_kr2": ("r_apac", "c_kr", "b_seoul", "t_seoul_a"),
    "u_kr3": ("r_apac", "c_kr", "b_busan", "t_busan_a"),
    "u_jp1": ("r_apac", "c_jp", "b_tokyo", "t_tokyo_a"),
    "u_de1": ("r_emea", "c_de", "b_berlin", "t_berlin_a"),
}
V1 = ("m1.0", "s1.0", "p1.0")

LOG_EVENTS = """
mutation($records: [EventLogInput!]) {
  logEvents(records: $records) { accepted rejected errors { index code message } }
}
"""
LOG_INTERACTIONS = """
mutation($records: [InteractionLogInput!]) {
  logInteractions(records: $records) { accepted rejected errors { index code message } }
}
"""
LOG_SESSIONS = """
mutation($records: [SessionLogInput!]) {
  logSessions(records: $records) { accepted rejected errors { index code message } }
}
"""


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-fixture/{name}"))


def _version(version: tuple[str, str, str]) -> dict[str, str]:
    return {"moduleVersion": version[0], "scenarioVersion": version[1], "promptVersion": version[2]}


def _scope(user: str) -> dict[str, str]:
    region, country, branch, team = SCOPES[user]
    return {"regionId": region, "countryId": country, "branchId": branch, "teamId": team}


def event(
    user: str,
    timestamp: str,
    event_type: str,
    action: str | None = None,
    version: tuple[str, str, str] = V1,
) -> dict[str, Any]:
    return {
        "eventId": _id(f"event/{user}/{timestamp}/{event_type}/{action}"),
        "timestamp": timestamp,
        "userId": user,
        "eventType": event_type,
        "context": {
            "moduleId": None,
            "quizId": None,
            "scenarioId": None,
            "turnIndex": None,
            "action": action,
        },
        "version": _version(version),
        "scope": _scope(user),
    }


def session(
    user: str,
    engine: str,
    end: str,
    *,
    turns: int,
    correct: int | None = None,
    attempts: int | None = None,
    success: bool | None = None,
    version: tuple[str, str, str] = V1,
) -> dict[str, Any]:
    return {
        "sessionId": _id(f"session/{user}/{end}/{engine}"),
        "userId": user,
        "engine": engine,
        "startTime": (datetime.fromisoformat(end) - timedelta(seconds=600)).isoformat(),
        "endTime": end,
        "durationSec": 600.0,
        "outcome": "success",
        "summary": {
            "turnCount": turns,
            "correctAnswers": correct,
            "upsellAttempts": attempts,
            "upsellSuccess": success,
        },
        "version": _version(version),
        "scope": _scope(user),
    }


def interaction(user: str, timestamp: str, version: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "interactionId": _id(f"interaction/{user}/{timestamp}"),
        "sessionId": _id(f"interaction-session/{user}"),
        "timestamp": timestamp,
        "userId": user,
        "engine": "saleslab",
        "input": "Would you like the extended warranty?",
        "output": None,
        "metadata": {
            "difficultyLevel": 2.0,
            "personaId": "persona-1",
            "traitActivation": ["price_sensitive"],
            "upsellTriggered": True,
        },
        "version": _version(version),
        "scope": _scope(user),
    }


T = f"{D1}T"
U = f"{D2}T"
EVENTS: list[dict[str, Any]] = [
    # D1
    event("u_kr1", f"{T}08:00:00+00:00", "login"),
    event("u_kr1", f"{T}08:05:00+00:00", "module_start"),
    event("u_kr1", f"{T}08:30:00+00:00", "module_complete"),
    event("u_kr1", f"{T}09:00:00+00:00", "module_start"),
    event("u_kr1", f"{T}09:10:00+00:00", "reward_claim", "xp:100"),
    event("u_kr1", f"{T}09:11:00+00:00", "reward_claim", "badge:starter"),
    event("u_kr2", f"{T}08:00:00+00:00", "login"),
    event("u_kr2", f"{T}08:10:00+00:00", "module_start"),
    event("u_kr2", f"{T}08:20:00+00:00", "module_start"),
    event("u_kr2", f"{T}08:50:00+00:00", "module_complete"),
    event("u_kr3", f"{T}08:15:00+00:00", "module_start"),
    event("u_kr3", f"{T}08:45:00+00:00", "module_complete"),
    event("u_kr3", f"{T}08:46:00+00:00", "reward_claim", "xp:50"),
    # 00:30 in Tokyo on D2 is 15:30 UTC on D1: it counts on D1.
    event("u_jp1", f"{D2}T00:30:00+09:00", "login"),
    event("u_de1", f"{T}08:00:00+00:00", "login"),
    event("u_de1", f"{T}09:00:00+00:00", "module_complete", version=("m2.0", "s1.0", "p1.0")),
    # D2
    event("u_kr1", f"{U}08:00:00+00:00", "login", version=("m1.1", "s1.0", "p1.0")),
    event("u_kr1", f"{U}08:30:00+00:00", "module_complete", version=("m1.1", "s1.0", "p1.0")),
    event("u_kr1", f"{U}08:40:00+00:00", "reward_claim", "xp:20", version=("m1.1", "s1.0", "p1.0")),
    event("u_kr1", f"{U}08:41:00+00:00", "reward_claim", "badge:alpha", version=("m1.1", "s1.0", "p1.0")),
    event("u_jp1", f"{U}09:00:00+00:00", "login"),
]
SESSIONS: list[dict[str, Any]] = [
    # D1
    session("u_kr1", "quiz", f"{T}10:00:00+00:00", turns=10, correct=7),
    session(
        "u_kr1",
        "saleslab",
        f"{T}11:00:00+00:00",
        turns=8,
        attempts=2,
        success=True,
        version=("m1.0", "s2.0", "p2.0"),
    ),
    session("u_kr2", "quiz", f"{T}10:00:00+00:00", turns=10, correct=6),
    session("u_kr2", "saleslab", f"{T}11:30:00+00:00", turns=6, attempts=1, success=False),
    session("u_kr3", "saleslab", f"{T}11:00:00+00:00", turns=4, attempts=0, success=None),
    session("u_jp1", "quiz", f"{T}09:30:00+00:00", turns=0, correct=0),
    session("u_jp1", "saleslab", f"{T}10:30:00+00:00", turns=9, attempts=3, success=True),
    # D2
    session("u_jp1", "quiz", f"{U}09:30:00+00:00", turns=5, correct=5),
]
INTERACTIONS: list[dict[str, Any]] = [
    interaction("u_kr3", f"{T}12:00:00+00:00", ("m1.0", "s1.0", "p3.0")),
]


async def load_fixture(gql: Any, admin: str) -> None:
    """Send the fixture's raw logs through logEvents / logInteractions / logSessions."""
    for mutation, records, field in (
        (LOG_EVENTS, EVENTS, "logEvents"),
        (LOG_INTERACTIONS, INTERACTIONS, "logInteractions"),
        (LOG_SESSIONS, SESSIONS, "logSessions"),
    ):
        body = await gql(mutation, {"records": records}, as_=admin)
        assert "errors" not in body, body
        assert body["data"][field]["rejected"] == 0, body
        assert body["data"][field]["accepted"] == len(records), body
