"""Accepting a UPM log: one unit of work for the group-commit writer.

An accepted log (a ``planning.Plan``) is written once, as the data layer's raw
record, and in the same transaction it moves the user's maintained profile,
topic/module/mission rows and skill mastery with atomic increments. Snapshots
and KPIs read the raw logs; the profile is never a second copy that could drift,
only a running sum of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from app.auth import Principal
from app.errors import SchemaMismatch
from app.scope import bound_depth
from app.services import directory
from app.services.audit import AuditLog
from app.services.upm import planning
from app.services.upm import rules as formulas
from app.services.upm.payloads import LearningResult, MissionResult, QuizResult, ScenarioResult
from app.services.upm.planning import Plan
from app.services.upm.ruleset import UpmRuleset
from app.settings import Settings
from persistence.models import EventLogRow, SessionLogRow, UserRow
from persistence.models.upm import (
    UpmLogRow,
    UpmMissionRow,
    UpmModuleRow,
    UpmProfileRow,
    UpmSkillRow,
    UpmTopicRow,
)
from persistence.prepared import Prepared

PROFILE = UpmProfileRow.__table__  # type: ignore[attr-defined]
TOPIC = UpmTopicRow.__table__  # type: ignore[attr-defined]
MODULE = UpmModuleRow.__table__  # type: ignore[attr-defined]
MISSION = UpmMissionRow.__table__  # type: ignore[attr-defined]
SKILL = UpmSkillRow.__table__  # type: ignore[attr-defined]
LOG = UpmLogRow.__table__  # type: ignore[attr-defined]
USERS = UserRow.__table__  # type: ignore[attr-defined]
SESSIONS = SessionLogRow.__table__  # type: ignore[attr-defined]
EVENTS = EventLogRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class LogAnswer:
    """What a caller learns; stored per logId and returned unchanged on a retry."""

    kind: str
    user_id: str
    log_id: str | None
    record_id: str
    skill_deltas: dict[str, float]
    duplicate: bool = False

    def stored(self) -> dict[str, Any]:
        return {"recordId": self.record_id, "skillDeltas": self.skill_deltas}


def _insert(dialect: str, table: sa.Table) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _clamp(dialect: str, value: Any) -> Any:
    if dialect == "postgresql":
        return sa.func.least(1.0, sa.func.greatest(0.0, value))
    return sa.func.min(1.0, sa.func.max(0.0, value))


def _upsert(table: sa.Table, keys: list[str], add: list[str], replace: tuple[str, ...] = ()) -> Prepared:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET add += excluded, replace = excluded."""

    def build(dialect: str) -> Any:
        stmt = _insert(dialect, table).values({name: sa.bindparam(name) for name in [*keys, *add, *replace]})
        set_ = {name: table.c[name] + stmt.excluded[name] for name in add}
        set_ |= {name: stmt.excluded[name] for name in replace}
        return stmt.on_conflict_do_update(index_elements=keys, set_=set_)

    return Prepared(build)


PROFILE_COUNTERS = [
    c.name for c in PROFILE.columns if c.name not in ("user_id", "behavior_ema", "updated_at")
]


def _profile_statement(dialect: str) -> Any:
    """Counters add up; behavior_ema := alpha*score + (1-alpha)*ema, or score for the first one."""
    stmt = _insert(dialect, PROFILE).values(
        {name: sa.bindparam(name) for name in ["user_id", *PROFILE_COUNTERS, "updated_at"]}
        | {"behavior_ema": sa.bindparam("ema", type_=sa.Float())}
    )
    score = stmt.excluded.behavior_ema
    set_ = {name: PROFILE.c[name] + stmt.excluded[name] for name in PROFILE_COUNTERS}
    set_["updated_at"] = stmt.excluded.updated_at
    set_["behavior_ema"] = sa.case(
        (score.is_(None), PROFILE.c.behavior_ema),
        (PROFILE.c.behavior_ema.is_(None), score),
        else_=sa.bindparam("alpha", type_=sa.Float()) * score
        + sa.bindparam("keep", type_=sa.Float()) * PROFILE.c.behavior_ema,
    )
    return stmt.on_conflict_do_update(index_elements=["user_id"], set_=set_)


def _skill_statement(dialect: str) -> Any:
    """mastery := clamp(mastery + delta); a new skill starts at clamp(0 + delta)."""
    stmt = _insert(dialect, SKILL).values(
        user_id=sa.bindparam("user_id"),
        skill_id=sa.bindparam("skill_id"),
        mastery=sa.bindparam("initial", type_=sa.Float()),
        updated_at=sa.bindparam("updated_at"),
    )
    return stmt.on_conflict_do_update(
        index_elements=["user_id", "skill_id"],
        set_={
            "mastery": _clamp(dialect, SKILL.c.mastery + sa.bindparam("delta", type_=sa.Float())),
            "updated_at": stmt.excluded.updated_at,
        },
    )


UPSERT_PROFILE = Prepared(_profile_statement)
UPSERT_SKILL = Prepared(_skill_statement)
UPSERT_TOPIC = _upsert(TOPIC, ["user_id", "topic"], ["quizzes", "correct", "total"])
UPSERT_MODULE = _upsert(MODULE, ["user_id", "module_id"], ["logs", "completions"])
UPSERT_MISSION = _upsert(MISSION, ["user_id", "mission_id"], ["successes", "failures"], ("last_success",))
INSERT_SESSIONS = Prepared.insert(SESSIONS)
INSERT_EVENTS = Prepared.insert(EVENTS)
INSERT_LOG = Prepared.insert(LOG)


@dataclass(frozen=True, slots=True)
class Job:
    """A planned log with what its unit of work needs."""

    plan: Plan
    principal: Principal
    rules: UpmRuleset
    request_id: str
    audit: AuditLog


def apply(conn: Connection, job: Job) -> LogAnswer:
    """One log as a unit of work (inside the writer's transaction, in its own savepoint)."""
    return apply_many(conn, [job])[0]


def apply_many(conn: Connection, jobs: list[Job]) -> list[LogAnswer]:
    """Logs that queued up together: one statement per table, in arrival order, so the
    result is what applying them one after the other would give."""
    now = datetime.now(UTC)
    answers: list[LogAnswer] = []
    fresh: list[Job] = []
    stored = _stored_answers(conn, [job.plan.log_id for job in jobs if job.plan.log_id is not None])
    for job in jobs:
        plan = job.plan
        answer = LogAnswer(plan.kind, plan.result.user_id, plan.log_id, plan.record_id, plan.deltas)
        if plan.log_id is not None:
            earlier = stored.get(plan.log_id)
            if earlier is not None:
                if earlier[0] != plan.payload_hash:
                    raise SchemaMismatch("logId was already used for a different log", field="logId")
                answers.append(_replay(plan, earlier[1]))
                continue
            stored[plan.log_id] = (
                plan.payload_hash,
                answer.stored(),
            )  # a later copy in this batch replays it
        answers.append(answer)
        fresh.append(job)
    _register_all(conn, fresh, now)
    rows: dict[Prepared, list[dict[str, Any]]] = {}
    for job in fresh:
        for statement, params in _writes(job.plan, job.rules, now):
            rows.setdefault(statement, []).append(params)
    for statement in (
        INSERT_SESSIONS,
        INSERT_EVENTS,
        UPSERT_TOPIC,
        UPSERT_MODULE,
        UPSERT_MISSION,
        UPSERT_PROFILE,
        UPSERT_SKILL,
        INSERT_LOG,
    ):
        if statement in rows:
            statement(conn, rows[statement])
    return answers


def _replay(plan: Plan, stored: dict[str, Any]) -> LogAnswer:
    return LogAnswer(
        plan.kind, plan.result.user_id, plan.log_id, stored["recordId"], stored["skillDeltas"], True
    )


def _stored_answers(conn: Connection, log_ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    if not log_ids:
        return {}
    found = conn.execute(
        sa.select(LOG.c.log_id, LOG.c.payload_hash, LOG.c.answer).where(LOG.c.log_id.in_(log_ids))
    )
    return {row.log_id: (row.payload_hash, row.answer) for row in found}


def _writes(plan: Plan, rules: UpmRuleset, now: datetime) -> Iterator[tuple[Prepared, dict[str, Any]]]:
    """The rows one log adds, per statement: raw records, running sums, skills, idempotency."""
    result = plan.result
    user = {"user_id": result.user_id}
    for row in plan.sessions:
        yield INSERT_SESSIONS, row
    for row in plan.events:
        yield INSERT_EVENTS, row
    add: dict[str, Any] = {}
    match result:
        case ScenarioResult():
            add = {
                "scenario_sessions": 1,
                "scenario_turns": result.turns,
                "scenario_upsell_successes": int(result.upsell_success),
                "scenario_objections": result.objections,
            }
            if plan.session_score is not None:
                add |= {"behavior_sum": plan.session_score, "behavior_count": 1}
        case QuizResult():
            add = {"quiz_count": 1, "quiz_accuracy_sum": result.accuracy}
            yield (
                UPSERT_TOPIC,
                user
                | {"topic": result.topic, "quizzes": 1, "correct": result.correct, "total": result.total},
            )
        case LearningResult():
            add = {
                "learning_logs": 1,
                "learning_completed_logs": int(result.completed),
                "learning_minutes": result.duration_minutes,
            }
            yield (
                UPSERT_MODULE,
                user | {"module_id": result.module_id, "logs": 1, "completions": int(result.completed)},
            )
        case MissionResult():
            add = {"missions_completed": int(result.success), "missions_failed": int(not result.success)}
            yield (
                UPSERT_MISSION,
                user
                | {
                    "mission_id": result.mission_id,
                    "successes": int(result.success),
                    "failures": int(not result.success),
                    "last_success": result.success,
                },
            )
    alpha = rules.behavior_score.ema_alpha
    yield (
        UPSERT_PROFILE,
        user
        | {name: add.get(name, 0) for name in PROFILE_COUNTERS}
        | {
            "ema": plan.session_score,
            "alpha": alpha,
            "keep": 1 - alpha,
            "updated_at": now,
        },
    )
    for skill, delta in plan.deltas.items():
        yield UPSERT_SKILL, _skill_row(result.user_id, skill, delta, now)
    if plan.log_id is not None:
        answer = LogAnswer(plan.kind, result.user_id, plan.log_id, plan.record_id, plan.deltas)
        yield (
            INSERT_LOG,
            {
                "log_id": plan.log_id,
                "kind": plan.kind,
                "user_id": result.user_id,
                "payload_hash": plan.payload_hash,
                "answer": answer.stored(),
                "created_at": now,
            },
        )


def _skill_row(user_id: str, skill: str, delta: float, now: datetime) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "skill_id": skill,
        "initial": formulas.clamp_mastery(delta),
        "delta": delta,
        "updated_at": now,
    }


def move_skills(conn: Connection, user_id: str, deltas: dict[str, float], now: datetime) -> None:
    """mastery := clamp(mastery + delta) atomically; a new skill starts from 0."""
    UPSERT_SKILL(conn, [_skill_row(user_id, skill, delta, now) for skill, delta in deltas.items()])


# built once: SQLAlchemy then reuses its compiled form (a fresh IN list is compiled every time)
_WHERE_USERS_ARE = sa.select(
    USERS.c.user_id, USERS.c.region_id, USERS.c.country_id, USERS.c.branch_id, USERS.c.team_id
).where(USERS.c.user_id.in_(sa.bindparam("ids", expanding=True)))


def _register_all(conn: Connection, jobs: list[Job], now: datetime) -> None:
    """A user seen for the first time joins the directory with the log's scope; a log with
    another scope moves the user (the logs keep the history of where they were). Both are
    audited (``directory.place_user``); a log from where the user already is changes nothing."""
    if not jobs:
        return
    _check_bounds(conn, jobs)
    user_ids = sorted({job.plan.result.user_id for job in jobs})
    where: dict[str, tuple[str, ...] | None] = dict.fromkeys(user_ids)
    for user_id, *located in conn.execute(_WHERE_USERS_ARE, {"ids": user_ids}):
        where[user_id] = tuple(located)
    locked = False
    for job in jobs:
        user_id, scope = job.plan.result.user_id, job.plan.scope
        wanted = (scope.region_id, scope.country_id, scope.branch_id, scope.team_id)
        if where[user_id] != wanted and not locked:
            job.audit.lock(conn)  # before the first user row: see AuditLog.lock
            locked = True
        while where[user_id] != wanted:
            found = where[user_id]
            if _place(conn, job, user_id, found, wanted, now):
                where[user_id] = wanted
            else:  # another worker's log added the user meanwhile: where did it put it?
                for _id, *located in conn.execute(_WHERE_USERS_ARE, {"ids": [user_id]}):
                    where[user_id] = tuple(located)


def _place(
    conn: Connection,
    job: Job,
    user_id: str,
    found: tuple[str, ...] | None,
    wanted: tuple[str, ...],
    now: datetime,
) -> bool:
    ids = ("regionId", "countryId", "branchId", "teamId")
    move = directory.Move(
        user_id,
        joins=found is None,
        values=dict(zip(("region_id", "country_id", "branch_id", "team_id"), wanted, strict=True)),
        before=None if found is None else {"scope": dict(zip(ids, found, strict=True))},
        after={"scope": dict(zip(ids, wanted, strict=True)), "via": "log"},
    )
    return directory.place_user(conn, job.audit, job.principal, move, job.request_id, now)


def _check_bounds(conn: Connection, jobs: list[Job]) -> None:
    """A sender limited to part of the tree logs only about users and units the directory
    places inside it (``app.scope.ensure_can_write_about``); a log that fails fails alone."""
    by_sender: dict[Principal, list[Job]] = {}
    for job in jobs:
        by_sender.setdefault(job.principal, []).append(job)
    for principal, owned in by_sender.items():
        if bound_depth(principal) is None:
            continue
        placements = directory.locate(conn, principal, [job.plan.result.user_id for job in owned])
        for job in owned:
            placements.check(job.plan.result.user_id, job.plan.scope)


async def log_result(
    run: Callable[..., Awaitable[LogAnswer]],
    kind: str,
    payload: dict[str, Any],
    principal: Principal,
    settings: Settings,
    rules: UpmRuleset,
    audit: AuditLog,
    request_id: str,
) -> LogAnswer:
    """Validate, then write through the group-commit writer; returns once committed."""
    job = Job(planning.plan(kind, payload, principal, settings, rules), principal, rules, request_id, audit)
    return await run(partial(apply, job=job), merge=apply_many, item=job)
