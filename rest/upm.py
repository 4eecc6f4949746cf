"""upm-api-v2 over REST: the four log POSTs, the summaries and the admin skill update.

Each handler authorises (``caller``), calls the service function the GraphQL resolver calls
(``app.services.upm.service``) and maps its result.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header
from starlette.responses import Response

from app import policy
from app.errors import SchemaMismatch
from app.services.upm import service as upm
from app.services.upm.profile import ProfileView
from app.services.upm.recording import LogAnswer
from rest.calls import Call, caller
from rest.errors import errors
from rest.models import (
    LearningLogBody,
    LearningSummary,
    LogResult,
    MissionLogBody,
    MissionSummary,
    PerformanceSummary,
    QuizLogBody,
    QuizSummary,
    ScenarioLogBody,
    ScenarioSummary,
    SkillLevel,
    SkillUpdateBody,
    epoch,
)

router = APIRouter(prefix="/operator/upm", tags=["upm"])

LogWriter = Annotated[Call, Depends(caller(policy.LOG_WRITERS))]
Operator = Annotated[Call, Depends(caller(policy.OPERATORS))]
Admin = Annotated[Call, Depends(caller(policy.ADMIN))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="The log's idempotency key (its logId): the same key with the same body returns the "
        "first answer with duplicate: true and Idempotent-Replayed: true; with another body, "
        "400 E_SCHEMA_MISMATCH. Shared with GraphQL's logId.",
    ),
]
LOG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Accepted and durable (or a replay of the first answer).",
        "headers": {"Idempotent-Replayed": {"description": "true on a replay", "schema": {"type": "string"}}},
    },
    **errors(),
}


def _log_result(answer: LogAnswer) -> Response:
    body = {
        "userId": answer.user_id,
        "logId": answer.log_id,
        "recordId": answer.record_id,
        "duplicate": answer.duplicate,
        "skillDeltas": [{"skillId": k, "delta": v} for k, v in sorted(answer.skill_deltas.items())],
    }
    headers = {"Idempotent-Replayed": "true"} if answer.duplicate else None
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


async def log_response(call: Call, kind: str, record: dict[str, Any], key: str | None) -> Response:
    """Log one record through the group-commit writer; answer once it is durable."""
    if key is not None:
        if record.get("logId", key) != key:
            raise SchemaMismatch("Idempotency-Key and logId differ", field="logId")
        record["logId"] = key
    answer = await upm.log(
        call.db.writer.run,
        kind,
        record,
        call.principal,
        call.settings,
        upm.active_ruleset(await call.ops.current()),
        call.ops.audit,
        call.request_id,
    )
    call.broker.publish(f"performance:{answer.user_id}")
    return _log_result(answer)


@router.post("/scenario/log", response_model=LogResult, responses=LOG_RESPONSES, summary="upm §2.1")
async def log_scenario(body: ScenarioLogBody, call: LogWriter, key: IdempotencyKey = None) -> Response:
    return await log_response(call, "scenario", body.record(), key)


@router.post("/quiz/log", response_model=LogResult, responses=LOG_RESPONSES, summary="upm §3.1")
async def log_quiz(body: QuizLogBody, call: LogWriter, key: IdempotencyKey = None) -> Response:
    return await log_response(call, "quiz", body.record(), key)


@router.post("/learning/log", response_model=LogResult, responses=LOG_RESPONSES, summary="upm §4.1")
async def log_learning(body: LearningLogBody, call: LogWriter, key: IdempotencyKey = None) -> Response:
    return await log_response(call, "learning", body.record(), key)


@router.post("/mission/log", response_model=LogResult, responses=LOG_RESPONSES, summary="upm §5.1")
async def log_mission(body: MissionLogBody, call: LogWriter, key: IdempotencyKey = None) -> Response:
    return await log_response(call, "mission", body.record(), key)


async def _profile(call: Call, user_id: str) -> ProfileView:
    rules = upm.active_ruleset(await call.ops.current())
    return await upm.fresh_profile(call.db, call.principal, user_id, rules)


def _skills(skill: dict[str, float]) -> dict[str, float]:
    return {"upsell": 0.0, "objection_handling": 0.0, "product_knowledge": 0.0, **skill}


def _scenario(view: ProfileView) -> ScenarioSummary:
    s = view.scenario
    return ScenarioSummary(
        total_sessions=s.total_sessions,
        avg_turns=s.avg_turns,
        upsell_success_rate=s.upsell_success_rate,
        avg_objections=s.avg_objections,
        behavior_score=s.behavior_score,
    )


def _quiz(view: ProfileView) -> QuizSummary:
    q = view.quiz
    return QuizSummary(
        total_quizzes=q.total_quizzes,
        avg_accuracy=q.avg_accuracy,
        strengths=q.strengths,
        weaknesses=q.weaknesses,
    )


def _learning(view: ProfileView) -> LearningSummary:
    le = view.learning
    return LearningSummary(
        completed_modules=le.completed_modules,
        repeat_count=le.repeat_count,
        engagement_score=le.engagement_score,
    )


def _missions(view: ProfileView) -> MissionSummary:
    m = view.missions
    return MissionSummary(completed=m.completed, failed=m.failed, active=m.active)


@router.get("/scenario/{userId}", responses=errors(404), summary="upm §2.2")
async def scenario_summary(userId: str, call: Operator) -> ScenarioSummary:
    return _scenario(await _profile(call, userId))


@router.get("/quiz/{userId}", responses=errors(404), summary="upm §3.2")
async def quiz_summary(userId: str, call: Operator) -> QuizSummary:
    return _quiz(await _profile(call, userId))


@router.get("/learning/{userId}", responses=errors(404), summary="upm §4.2")
async def learning_summary(userId: str, call: Operator) -> LearningSummary:
    return _learning(await _profile(call, userId))


@router.get("/mission/{userId}", responses=errors(404), summary="upm §5.2")
async def mission_summary(userId: str, call: Operator) -> MissionSummary:
    return _missions(await _profile(call, userId))


@router.get("/skill/{userId}", responses=errors(404), summary="upm §6.2: mastery per skill id")
async def skill_summary(userId: str, call: Operator) -> dict[str, float]:
    return _skills((await _profile(call, userId)).skill)


@router.get("/summary/{userId}", responses=errors(404), summary="upm §7: the full summary")
async def performance_summary(userId: str, call: Operator) -> PerformanceSummary:
    view = await _profile(call, userId)
    return PerformanceSummary(
        user_id=view.user_id,
        scenario=_scenario(view),
        quiz=_quiz(view),
        learning=_learning(view),
        missions=_missions(view),
        skill=_skills(view.skill),
        updated_at=epoch(view.updated_at),
    )


@router.post("/skill/update", responses=errors(404), summary="upm §6.1 (admin only)")
async def update_skill(body: SkillUpdateBody, call: Admin) -> SkillLevel:
    mastery = await upm.update_skill(
        call.db.writer.run,
        call.principal,
        body.user_id,
        body.skill_id,
        body.delta,
        body.source,
        call.ops.audit,
        call.request_id,
    )
    call.broker.publish(f"performance:{body.user_id}")
    return SkillLevel(user_id=body.user_id, skill_id=body.skill_id, mastery=mastery)
