"""The floor of the dashboard page on PostgreSQL: ``GET /dashboard`` straight on asyncpg.

The same five statements as bench/raw_app.py's dashboard (one page of the directory, then the
four profile statements of ``app.services.upm.profile``), written as plain SQL with the ids as
one array parameter (``= ANY($1)``), run on one pooled connection, the rows put into the same
``ProfileRows``, built by the same ``profile.build`` and dumped as the same JSON. What is left
between this and ``/graphql`` is SQLAlchemy, GraphQL and the project's own code, not the work.

    TRAINER_DATABASE_URL=postgresql://... uvicorn bench.raw_pg:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.services.upm import profile
from app.services.upm.ruleset import DEFAULT_UPM_RULESET
from bench.raw_app import performance_json
from persistence.models.directory import UserRow
from persistence.models.upm import UpmProfileRow

_USER_COLUMNS = ", ".join(UserRow.__table__.c.keys())  # type: ignore[attr-defined]
_PROFILE_COLUMNS = ", ".join(UpmProfileRow.__table__.c.keys())  # type: ignore[attr-defined]
USERS = f"SELECT {_USER_COLUMNS} FROM users ORDER BY user_id LIMIT 100"
PROFILES = f"SELECT {_PROFILE_COLUMNS} FROM upm_profile WHERE user_id = ANY($1)"
TOPICS = "SELECT user_id, topic, quizzes, correct, total FROM upm_topic WHERE user_id = ANY($1)"
SKILLS = "SELECT user_id, skill_id, mastery FROM upm_skill WHERE user_id = ANY($1)"
COUNTS = """
SELECT user_id, 'module' AS kind, count(*) AS n, sum(CASE WHEN completions > 0 THEN 1 ELSE 0 END) AS k
FROM upm_module WHERE user_id = ANY($1) GROUP BY user_id
UNION ALL
SELECT user_id, 'mission', count(*), sum(CASE WHEN last_success IS false THEN 1 ELSE 0 END)
FROM upm_mission WHERE user_id = ANY($1) GROUP BY user_id
"""


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes ``postgresql://``; the project's settings carry ``postgresql+asyncpg://``."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


async def rows_by_user_ids(conn: Any, user_ids: list[str]) -> dict[str, profile.ProfileRows]:
    """``profile.rows_by_user_ids`` without SQLAlchemy: the same four statements, the same rows."""
    found = {user_id: profile.ProfileRows() for user_id in user_ids}
    for record in await conn.fetch(PROFILES, user_ids):
        found[record["user_id"]].profile = profile.ProfileCounters(*record)  # columns in table order
    for user_id, name, quizzes, correct, total in await conn.fetch(TOPICS, user_ids):
        found[user_id].topics.append((name, quizzes, correct, total))
    for user_id, skill_id, mastery in await conn.fetch(SKILLS, user_ids):
        found[user_id].skills[skill_id] = mastery
    for user_id, kind, n, k in await conn.fetch(COUNTS, user_ids):
        if kind == "module":
            found[user_id].modules, found[user_id].completed_modules = int(n), int(k or 0)
        else:
            found[user_id].active_missions = int(k or 0)
    return found


POOL: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    url = os.environ.get("TRAINER_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    size = int(os.environ.get("TRAINER_DB_POOL_SIZE", "10"))  # the project's default pool size
    POOL["pool"] = await asyncpg.create_pool(asyncpg_dsn(url), min_size=size, max_size=size)
    try:
        yield
    finally:
        await POOL.pop("pool").close()


async def dashboard(_: Request) -> Response:
    async with POOL["pool"].acquire() as conn:
        users = [record["user_id"] for record in await conn.fetch(USERS)]
        rows = await rows_by_user_ids(conn, users)
    nodes = [
        {
            "userId": user_id,
            "performance": performance_json(profile.build(user_id, rows[user_id], DEFAULT_UPM_RULESET)),
        }
        for user_id in users
    ]
    return Response(orjson.dumps({"data": {"users": {"nodes": nodes}}}), media_type="application/json")


app = Starlette(routes=[Route("/dashboard", dashboard, methods=["GET"])], lifespan=lifespan)
