"""Planning a UPM log: everything decided before touching the database.

A plan validates the log as the data layer would (scope, version, fields, the
sender's bound), and turns it into the raw records it stores (a scenario is a
saleslab session, a quiz a quiz session, a learning log a learning session plus
its module events, a mission result a mission event) and its skill deltas;
``recording`` then writes it in the group-commit writer's transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from app.auth import Principal
from app.ids import uuid_ids
from app.scope import Scope
from app.services.ingest.validation import RecordValidator
from app.services.upm import payloads
from app.services.upm import rules as formulas
from app.services.upm.payloads import LearningResult, MissionResult, QuizResult, Result, ScenarioResult
from app.services.upm.ruleset import UpmRuleset
from app.settings import Settings

KINDS: dict[str, Callable[[dict[str, Any]], Result]] = {
    "scenario": payloads.scenario,
    "quiz": payloads.quiz,
    "learning": payloads.learning,
    "mission": payloads.mission,
}
_LOG_NAMESPACE = uuid.UUID("6f1c2b1e-8d1a-4c57-9a55-3f0e7f6b9a10")
_RECORD_IDS = uuid_ids()  # for logs without a logId


@dataclass(slots=True)
class Plan:
    """Everything decided before touching the database."""

    kind: str
    result: Result
    scope: Scope
    log_id: str | None
    payload_hash: str
    record_id: str
    sessions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    session_score: float | None = None
    deltas: dict[str, float] = field(default_factory=dict)


def plan(
    kind: str,
    payload: dict[str, Any],
    principal: Principal,
    settings: Settings,
    rules: UpmRuleset,
    now: datetime | None = None,
) -> Plan:
    """Validate a log and decide its writes: scope, version, fields, then the sender's bound."""
    now = now or datetime.now(UTC)
    validator = RecordValidator(principal, settings.event_types, now)
    region, country, branch, team = validator.scope(payload)
    validator.version(payload)
    result = KINDS[kind](payload)
    log_id = payloads.log_id(payload)
    record_id = str(uuid.uuid5(_LOG_NAMESPACE, f"{kind}:{log_id}")) if log_id else _RECORD_IDS.next()
    digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    out = Plan(kind, result, Scope(region, country, branch, team), log_id, digest, record_id)
    head = {"userId": result.user_id, "version": payload["version"], "scope": payload["scope"]}
    stamp = now.isoformat()
    match result:
        case ScenarioResult():
            out.session_score = formulas.session_score(result, rules)
            out.sessions.append(
                _session(
                    head,
                    record_id,
                    "saleslab",
                    stamp,
                    0,
                    None,
                    {
                        "turnCount": result.turns,
                        "correctAnswers": None,
                        # every SalesLab scenario is one upsell attempt (data-layer §4.4)
                        "upsellAttempts": 1,
                        "upsellSuccess": result.upsell_success,
                    },
                )
            )
        case QuizResult():
            passed = result.accuracy >= settings.quiz_pass_threshold
            out.sessions.append(
                _session(
                    head,
                    record_id,
                    "quiz",
                    stamp,
                    0,
                    "success" if passed else "fail",
                    {
                        "turnCount": result.total,
                        "correctAnswers": result.correct,
                        "upsellAttempts": None,
                        "upsellSuccess": None,
                    },
                )
            )
        case LearningResult():
            seconds = result.duration_minutes * 60
            outcome = "success" if result.completed else "partial"
            out.sessions.append(
                _session(
                    head,
                    record_id,
                    "learning",
                    stamp,
                    seconds,
                    outcome,
                    {
                        "turnCount": 0,
                        "correctAnswers": None,
                        "upsellAttempts": None,
                        "upsellSuccess": None,
                    },
                )
            )
            out.events.append(
                _event(head, f"{record_id}:start", "module_start", stamp, {"moduleId": result.module_id})
            )
            if result.completed:
                out.events.append(
                    _event(
                        head, f"{record_id}:done", "module_complete", stamp, {"moduleId": result.module_id}
                    )
                )
        case MissionResult():
            event_type = "mission_complete" if result.success else "mission_fail"
            out.events.append(
                _event(head, record_id, event_type, stamp, {"action": f"mission:{result.mission_id}"})
            )
    # The data layer's own checks (and its bound check) decide these records too.
    out.sessions = [validator.session(record).row for record in out.sessions]
    out.events = [validator.event(record).row for record in out.events]
    out.deltas = formulas.skill_deltas(result, rules)
    return out


def _session(
    head: dict[str, Any],
    session_id: str,
    engine: str,
    stamp: str,
    seconds: float,
    outcome: str | None,
    summary: dict[str, Any],
) -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "engine": engine,
        "startTime": stamp,
        "endTime": stamp,
        "durationSec": seconds,
        "outcome": outcome,
        "summary": summary,
        **head,
    }


def _event(
    head: dict[str, Any], event_id: str, event_type: str, stamp: str, context: dict[str, Any]
) -> dict[str, Any]:
    full = {"moduleId": None, "quizId": None, "scenarioId": None, "turnIndex": None, "action": None}
    return {
        "eventId": event_id,
        "timestamp": stamp,
        "eventType": event_type,
        "context": full | context,
        **head,
    }
