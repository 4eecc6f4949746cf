"""The one place that decides what a principal may see and write.

Every read and write of user-scoped data goes through these functions, so the
contract's rule ("out of scope is FORBIDDEN, never silently filtered") is
implemented once. Operators are bound to one node of the region > country >
branch > team tree; engines may carry an optional bound on what they log.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from app.auth import Principal, Role
from app.errors import Forbidden, OutOfScope
from app.policy import OPERATORS

LEVELS = ("region", "country", "branch", "team")


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a user or record sits: all four ids are known."""

    region_id: str
    country_id: str
    branch_id: str
    team_id: str

    def id_at(self, level: str) -> str:
        return str(getattr(self, f"{level}_id"))

    def path(self, depth: int) -> tuple[str, ...]:
        """The ids from the region down to ``LEVELS[depth]``."""
        return tuple(self.id_at(level) for level in LEVELS[: depth + 1])


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """A partial scope: the ids a query or a principal pins down (None = any)."""

    region_id: str | None = None
    country_id: str | None = None
    branch_id: str | None = None
    team_id: str | None = None

    def pinned(self) -> dict[str, str]:
        return {level: value for level in LEVELS if (value := getattr(self, f"{level}_id")) is not None}

    def contains(self, scope: Scope) -> bool:
        return all(scope.id_at(level) == value for level, value in self.pinned().items())


FULL_ACCESS = ScopeFilter()


def principal_bound(principal: Principal) -> ScopeFilter:
    """The part of the tree a principal is bound to (admin: all of it)."""
    match principal.role:
        case Role.ADMIN:
            return FULL_ACCESS
        case Role.REGION:
            return ScopeFilter(region_id=principal.region_id)
        case Role.COUNTRY:
            return ScopeFilter(country_id=principal.country_id)
        case Role.BRANCH:
            return ScopeFilter(branch_id=principal.branch_id)
        case Role.ENGINE:
            return ScopeFilter(
                region_id=principal.region_id,
                country_id=principal.country_id,
                branch_id=principal.branch_id,
            )


def ensure_operator(principal: Principal) -> None:
    """User data is read by operators; engines read only what their own fields allow."""
    if principal.role not in OPERATORS:
        raise Forbidden(f"role {principal.role.value} may not read user data")


def ensure_can_read(principal: Principal, scope: Scope | None) -> None:
    """Refuse a read of one object; a missing object is refused the same way for non-admins,
    so that the answer never tells whether a user outside one's scope exists."""
    ensure_operator(principal)
    if scope is None:
        if principal.is_admin:
            return
        raise Forbidden("not in your scope")
    if not principal_bound(principal).contains(scope):
        raise Forbidden("not in your scope")


def ensure_can_write(principal: Principal, scope: Scope) -> None:
    """AG-DATA-04: a log whose scope lies outside the sender's bound is refused."""
    if not principal_bound(principal).contains(scope):
        raise OutOfScope(
            "record scope is outside what this principal may write",
            scope={level: scope.id_at(level) for level in LEVELS},
        )


def bound_depth(principal: Principal) -> int | None:
    """The deepest level a sender's bound pins (None: no bound, it may write anywhere)."""
    pinned = principal_bound(principal).pinned()
    return max(LEVELS.index(level) for level in pinned) if pinned else None


def ensure_can_write_about(
    principal: Principal, record: Scope, placed: Scope | None, unit_paths: Collection[tuple[str, ...]]
) -> None:
    """AG-DATA-04 for a bounded sender (an engine limited to a region, country or branch).

    Its records may neither pull in a user the directory places elsewhere (``placed``)
    nor file its own unit under other parents than the directory knows for it
    (``unit_paths``: the region..bound-level ids of the unit's users; empty when it has
    none yet). Moving users and units between nodes is for unbounded senders.
    """
    depth = bound_depth(principal)
    if depth is None:
        return
    # ``record`` itself is inside the bound: the record validator checked it (ensure_can_write)
    if placed is not None and not principal_bound(principal).contains(placed):
        raise OutOfScope("the user is outside what this principal may write")
    if unit_paths and record.path(depth) not in unit_paths:
        raise OutOfScope(
            f"{LEVELS[depth]} {record.id_at(LEVELS[depth])!r} does not sit under the ids this record gives",
            scope={level: record.id_at(level) for level in LEVELS},
        )


def narrow(principal: Principal, requested: ScopeFilter | None) -> ScopeFilter:
    """Combine a list query's filter with the principal's bound.

    A filter that contradicts the bound at the same level is FORBIDDEN rather
    than an empty answer. Finer ids (a branch under a country operator) are
    checked against the tree by ``app.services.directory`` before the list runs.
    """
    ensure_operator(principal)
    bound = principal_bound(principal)
    merged = dict(bound.pinned())
    for level, value in (requested or FULL_ACCESS).pinned().items():
        if level in merged and merged[level] != value:
            raise Forbidden(f"{level} {value!r} is not in your scope")
        merged[level] = value
    return ScopeFilter(**{f"{level}_id": value for level, value in merged.items()})
