"""The ops §8 scope matrix: resolvers gate roles with the sets of ``app.policy`` (drawn
below) and the services apply the partial (⚠️) rules here, so the REST layer gets the same
answers.

    operation                      branch  country  region                 admin  engine
    modelConfig                    -       -        -                      yes    read
    updateModelConfig              -       -        -                      yes    -
    features                       -       -        read                   yes    read
    setFeatureToggle               -       -        regionFlippable only   yes    -
    limits                         -       -        -                      yes    read
    updateLimits                   -       -        -                      yes    -
    rulesets(type)                 -       content  content, difficulty,   all    all
                                                    scenario
    uploadRuleset                  -       -        -                      yes    -
    hotReload(type)                -       content  content, difficulty,   all    -
                                                    scenario
    releases, createRelease,       -       -        -                      yes    -
      rollbackRelease
    health                         status  + latencyMs, uptimeHours,       all    -
                                           engines (both)
    diagnostics                    -       -        -                      yes    -
    engineHeartbeat                -       -        -                      yes    yes

Region and country operators hot-reload the content-side rulesets their markets tune (content
for a country; content, difficulty and scenario for a region); prompt, upm, insights, mission,
gamification and system rules change the whole pipeline and stay with admin. Toggles a region
may flip are marked ``region_flippable`` (seeded: quiz_auto_generate, content_ai_transform).
"""

from __future__ import annotations

from app import policy
from app.auth import Principal, Role
from app.errors import Forbidden
from app.services.ops.catalog import RulesetType

ALL_TYPES = frozenset(RulesetType)
# the roles of app.policy.HOT_RELOADERS and RULESET_READERS handle every type unless narrowed here
NARROWED: dict[Role, frozenset[RulesetType]] = {
    Role.REGION: frozenset({RulesetType.content, RulesetType.difficulty, RulesetType.scenario}),
    Role.COUNTRY: frozenset({RulesetType.content}),
}
RELOADABLE = {role: NARROWED.get(role, ALL_TYPES) for role in policy.HOT_RELOADERS}
READABLE_RULESETS = {role: NARROWED.get(role, ALL_TYPES) for role in policy.RULESET_READERS}


def ensure_can_reload(principal: Principal, kind: RulesetType) -> None:
    if kind not in RELOADABLE.get(principal.role, frozenset()):
        raise Forbidden(f"role {principal.role.value} may not hot-reload {kind.value} rulesets")


def ensure_can_read_rulesets(principal: Principal, kind: RulesetType) -> None:
    if kind not in READABLE_RULESETS.get(principal.role, frozenset()):
        raise Forbidden(f"role {principal.role.value} may not read {kind.value} rulesets")


def ensure_can_flip(principal: Principal, key: str, region_flippable: bool) -> None:
    if principal.is_admin or (principal.role is Role.REGION and region_flippable):
        return
    raise Forbidden(f"role {principal.role.value} may not change feature toggle {key!r}")
