"""The hand-written baselines the UPM benchmarks compare against (no GraphQL).

- ``POST /raw``: parse a JSON body, answer a small JSON object — the ceiling of a
  Starlette endpoint on this machine;
- ``GET /dashboard``: the same SQL as ``users(first: 100) { performance {...} }``
  (one page of the directory, then the four profile statements) and the same JSON.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from app.services.upm import profile
from app.services.upm.ruleset import DEFAULT_UPM_RULESET
from app.settings import Settings
from persistence.db import Database
from persistence.models import UserRow

db = Database(Settings(database_url=os.environ.get("TRAINER_DATABASE_URL", "sqlite+aiosqlite:///:memory:")))


def performance_json(view: profile.ProfileView) -> dict[str, Any]:
    s, q, learning, m = view.scenario, view.quiz, view.learning, view.missions
    return {
        "scenario": {
            "totalSessions": s.total_sessions,
            "avgTurns": s.avg_turns,
            "upsellSuccessRate": s.upsell_success_rate,
            "avgObjections": s.avg_objections,
            "behaviorScore": s.behavior_score,
        },
        "quiz": {
            "totalQuizzes": q.total_quizzes,
            "avgAccuracy": q.avg_accuracy,
            "strengths": q.strengths,
            "weaknesses": q.weaknesses,
        },
        "learning": {
            "completedModules": learning.completed_modules,
            "repeatCount": learning.repeat_count,
            "engagementScore": learning.engagement_score,
        },
        "missions": {"completed": m.completed, "failed": m.failed, "active": m.active},
        "skill": {
            "upsell": view.skill.get("upsell", 0.0),
            "objectionHandling": view.skill.get("objection_handling", 0.0),
            "productKnowledge": view.skill.get("product_knowledge", 0.0),
        },
    }


async def raw(request: Request) -> Response:
    try:
        await request.json()
    except ClientDisconnect:  # wrk hangs up mid-request when its time is up
        return Response(status_code=499)
    return Response(orjson.dumps({"data": {"logScenario": {"recordId": "x"}}}), media_type="application/json")


async def dashboard(_: Request) -> Response:
    async with db.session() as session:
        users = (await session.scalars(select(UserRow).order_by(UserRow.user_id).limit(100))).all()  # type: ignore[arg-type]
        rows = await profile.rows_by_user_ids(session, [u.user_id for u in users])
    nodes = [
        {
            "userId": u.user_id,
            "performance": performance_json(profile.build(u.user_id, rows[u.user_id], DEFAULT_UPM_RULESET)),
        }
        for u in users
    ]
    return Response(orjson.dumps({"data": {"users": {"nodes": nodes}}}), media_type="application/json")


app = Starlette(
    routes=[Route("/raw", raw, methods=["POST"]), Route("/dashboard", dashboard, methods=["GET"])]
)
