"""User Performance Monitor: logs from engines, summaries for dashboards, live updates."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app import policy
from app.services.upm import service as upm
from app.services.upm.profile import ProfileView
from app.services.upm.ruleset import UpmRuleset
from graphql_schema.info import Info
from graphql_schema.permissions import allow
from graphql_schema.types.inputs import Record
from graphql_schema.types.upm import (
    LearningLog,
    LearningPerformance,
    LogResult,
    MissionLog,
    MissionPerformance,
    Performance,
    QuizLog,
    QuizPerformance,
    ScenarioLog,
    ScenarioPerformance,
    SkillLevel,
    SkillMastery,
    SkillUpdateInput,
)


async def _rules(info: Info) -> UpmRuleset:
    return upm.active_ruleset(await info.context.ops.current())


async def _profile(info: Info, user_id: str) -> ProfileView:
    ctx = info.context
    loaders = ctx.loaders
    return await upm.read_profile(
        ctx.principal,
        user_id,
        loaders.user_by_id.load,
        loaders.profile_rows_by_user_id.load,
        await _rules(info),
    )


async def _log(info: Info, kind: str, payload: Record) -> LogResult:
    ctx = info.context
    answer = await upm.log(
        ctx.db.writer.run,
        kind,
        payload,
        ctx.principal,
        ctx.settings,
        await _rules(info),
        ctx.ops.audit,
        ctx.request_id,
    )
    ctx.broker.publish(f"performance:{answer.user_id}")
    return LogResult.from_row(answer)


@strawberry.type
class UpmQuery:
    @strawberry.field(extensions=[allow(policy.OPERATORS)], description="upm §7: the full summary.")
    async def performance_summary(self, info: Info, user_id: str) -> Performance:
        return Performance.from_row(await _profile(info, user_id))

    @strawberry.field(extensions=[allow(policy.OPERATORS)], description="upm §2.2")
    async def scenario_summary(self, info: Info, user_id: str) -> ScenarioPerformance:
        return ScenarioPerformance.from_row((await _profile(info, user_id)).scenario)

    @strawberry.field(extensions=[allow(policy.OPERATORS)], description="upm §3.2")
    async def quiz_summary(self, info: Info, user_id: str) -> QuizPerformance:
        return QuizPerformance.from_row((await _profile(info, user_id)).quiz)

    @strawberry.field(extensions=[allow(policy.OPERATORS)], description="upm §4.2")
    async def learning_summary(self, info: Info, user_id: str) -> LearningPerformance:
        return LearningPerformance.from_row((await _profile(info, user_id)).learning)

    @strawberry.field(extensions=[allow(policy.OPERATORS)], description="upm §5.2")
    async def mission_summary(self, info: Info, user_id: str) -> MissionPerformance:
        return MissionPerformance.from_row((await _profile(info, user_id)).missions)

    @strawberry.field(extensions=[allow(policy.OPERATORS)], description="upm §6.2")
    async def skill_summary(self, info: Info, user_id: str) -> SkillMastery:
        return SkillMastery.from_row((await _profile(info, user_id)).skill)


@strawberry.type
class UpmMutation:
    @strawberry.mutation(
        extensions=[allow(policy.LOG_WRITERS)], description="upm §2.1: a SalesLab scenario session."
    )
    async def log_scenario(self, info: Info, input: ScenarioLog) -> LogResult:
        return await _log(info, "scenario", input)

    @strawberry.mutation(extensions=[allow(policy.LOG_WRITERS)], description="upm §3.1: a quiz result.")
    async def log_quiz(self, info: Info, input: QuizLog) -> LogResult:
        return await _log(info, "quiz", input)

    @strawberry.mutation(
        extensions=[allow(policy.LOG_WRITERS)], description="upm §4.1: a learning module log."
    )
    async def log_learning(self, info: Info, input: LearningLog) -> LogResult:
        return await _log(info, "learning", input)

    @strawberry.mutation(extensions=[allow(policy.LOG_WRITERS)], description="upm §5.1: a mission result.")
    async def log_mission(self, info: Info, input: MissionLog) -> LogResult:
        return await _log(info, "mission", input)

    @strawberry.mutation(
        extensions=[allow(policy.ADMIN)],
        description="upm §6.1, admin only: engines never change mastery directly (upm §10).",
    )
    async def update_skill(self, info: Info, input: SkillUpdateInput) -> SkillLevel:
        ctx = info.context
        mastery = await upm.update_skill(
            ctx.db.writer.run,
            ctx.principal,
            input.user_id,
            input.skill_id,
            input.delta,
            input.source,
            ctx.ops.audit,
            ctx.request_id,
        )
        ctx.broker.publish(f"performance:{input.user_id}")
        return SkillLevel(skill_id=input.skill_id, mastery=mastery)


@strawberry.type
class UpmSubscription:
    @strawberry.subscription(
        extensions=[allow(policy.OPERATORS)],
        description="The user's profile now, then again after every accepted log for the user.",
    )
    async def performance_updated(self, info: Info, user_id: str) -> AsyncGenerator[Performance, None]:
        ctx = info.context
        async with ctx.broker.listen(f"performance:{user_id}") as wakeups:
            # listening first, so no update between this read and the next is lost
            yield Performance.from_row(await _profile(info, user_id))  # also authorises
            while True:
                await wakeups.get()
                yield Performance.from_row(
                    await upm.fresh_profile(ctx.db, ctx.principal, user_id, await _rules(info))
                )
