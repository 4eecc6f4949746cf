"""The UPM operations resolvers call: read a profile, log a result, change a skill by hand."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from app.auth import Principal, Role
from app.errors import Forbidden, NotFound, SchemaMismatch
from app.services import directory
from app.services.audit import AuditLog
from app.services.ops.catalog import RulesetType
from app.services.ops.values import OpsSnapshot
from app.services.upm import profile, recording
from app.services.upm.profile import ProfileRows, ProfileView
from app.services.upm.ruleset import DEFAULT_UPM_RULESET, SKILLS, SOURCES, UpmRuleset
from app.settings import Settings
from app.validation import check_id
from persistence.db import Database
from persistence.models import UserRow
from persistence.models.upm import UpmSkillRow

_parsed: dict[str, UpmRuleset] = {}


def active_ruleset(ops: OpsSnapshot) -> UpmRuleset:
    """The UPM ruleset in force (parsed once per ruleset id: rulesets are immutable by id)."""
    active = ops.rulesets.get(RulesetType.upm)
    if active is None or active.ruleset_id is None or active.document is None:
        return DEFAULT_UPM_RULESET
    rules = _parsed.get(active.ruleset_id)
    if rules is None:
        rules = _parsed[active.ruleset_id] = UpmRuleset.model_validate(active.document)
    return rules


async def read_profile(
    principal: Principal,
    user_id: str,
    load_user: Callable[[str], Awaitable[directory.UserFields | None]],
    load_rows: Callable[[str], Awaitable[ProfileRows]],
    rules: UpmRuleset,
) -> ProfileView:
    """upm §8: operators read the users of their scope; engines read the Insights input instead."""
    directory.check_can_read(principal, await load_user(user_id))
    return profile.build(user_id, await load_rows(user_id), rules)


async def fresh_profile(db: Database, principal: Principal, user_id: str, rules: UpmRuleset) -> ProfileView:
    """The profile as committed now (subscriptions: no request-scoped loader cache), checked
    against the user's scope now: a user who moved out of the subscriber's scope ends it."""
    async with db.session() as session:
        user = (await directory.users_by_ids(session, [user_id])).get(user_id)
        directory.check_can_read(principal, user)
        rows = (await profile.rows_by_user_ids(session, [user_id]))[user_id]
    return profile.build(user_id, rows, rules)


async def log(
    run: Callable[[Callable[[Connection], recording.LogAnswer]], Awaitable[recording.LogAnswer]],
    kind: str,
    payload: dict[str, object],
    principal: Principal,
    settings: Settings,
    rules: UpmRuleset,
    audit: AuditLog,
    request_id: str,
) -> recording.LogAnswer:
    return await recording.log_result(run, kind, payload, principal, settings, rules, audit, request_id)


async def update_skill(
    run: Callable[[Callable[[Connection], float]], Awaitable[float]],
    principal: Principal,
    user_id: str,
    skill_id: str,
    delta: float,
    source: str,
    audit: AuditLog,
    request_id: str,
) -> float:
    """upm §6.1 by hand (admin only: engines never set mastery, §10); audited with the change."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin changes skill mastery directly")
    check_id("userId", user_id)
    if skill_id not in SKILLS:
        raise SchemaMismatch(f"skillId must be one of {', '.join(SKILLS)}", field="skillId")
    if source not in SOURCES:
        raise SchemaMismatch(f"source must be one of {', '.join(SOURCES)}", field="source")
    if not -1 <= delta <= 1 or delta != delta:
        raise SchemaMismatch("delta must be between -1 and 1", field="delta")

    def unit(conn: Connection) -> float:
        users = UserRow.__table__.c  # type: ignore[attr-defined]
        if conn.execute(select(users.user_id).where(users.user_id == user_id)).first() is None:
            raise NotFound("no such user")
        skill = UpmSkillRow.__table__.c  # type: ignore[attr-defined]
        query = select(skill.mastery).where(skill.user_id == user_id, skill.skill_id == skill_id)
        before = conn.execute(query).scalar_one_or_none()
        recording.move_skills(conn, user_id, {skill_id: delta}, datetime.now(UTC))
        after = float(conn.execute(query).scalar_one())
        audit.append(
            conn,
            principal,
            action="update_skill",
            target=f"skill:{user_id}:{skill_id}",
            before={"mastery": before},
            after={"mastery": after, "delta": delta, "source": source},
            request_id=request_id,
            user_id=user_id,
        )
        return after

    return await run(unit)
