"""The user directory: register users and read them within the caller's scope."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import Connection, and_, bindparam, exists, or_, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.auth import Principal
from app.errors import Forbidden, NotFound
from app.pagination import Page, decode_cursor, encode_cursor
from app.scope import (
    LEVELS,
    Scope,
    ScopeFilter,
    bound_depth,
    ensure_can_read,
    ensure_can_write_about,
    narrow,
    principal_bound,
)
from app.services import audit
from app.validation import check_id, check_page_size, check_text, is_id
from persistence.db import Database
from persistence.fast_read import Read
from persistence.models import UserRow

USERS = UserRow.__table__  # type: ignore[attr-defined]

CURSOR_KIND = "user"


class UserFields(Protocol):
    """What reading a user needs: a table model, or a page's plain ``DirectoryEntry``."""

    @property
    def user_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def region_id(self) -> str: ...
    @property
    def country_id(self) -> str: ...
    @property
    def branch_id(self) -> str: ...
    @property
    def team_id(self) -> str: ...


class DirectoryEntry(NamedTuple):
    """One ``users`` row as plain data, its columns in table order: a page reads 100 of them,
    and a table model costs several times more to make (pydantic's model_construct)."""

    user_id: str
    name: str
    region_id: str
    country_id: str
    branch_id: str
    team_id: str
    created_at: datetime
    updated_at: datetime


if DirectoryEntry._fields != tuple(column.name for column in USERS.c):  # pragma: no cover
    raise RuntimeError("DirectoryEntry no longer matches the users table")

U = TypeVar("U", bound=UserFields)


def scope_of(row: UserFields) -> Scope:
    return Scope(row.region_id, row.country_id, row.branch_id, row.team_id)


def _column(level: str):  # type: ignore[no-untyped-def]
    return getattr(UserRow, f"{level}_id")


def _where(filter_: ScopeFilter):  # type: ignore[no-untyped-def]
    return and_(true(), *(_column(level) == value for level, value in filter_.pinned().items()))


async def users_by_ids(session: AsyncSession, user_ids: Sequence[str]) -> dict[str, UserRow]:
    """One statement for any number of ids: the DataLoader's batch. A key that is not an id
    names no user (registration checks them) and is not looked up: PostgreSQL would refuse
    one with a NUL."""
    ids = [user_id for user_id in user_ids if is_id(user_id)]
    if not ids:
        return {}
    rows = (await session.scalars(_USERS_BY_IDS, {"ids": ids})).all()
    return {row.user_id: row for row in rows}


# Built once, so SQLAlchemy's memoized cache key is reused (see app.services.upm.profile).
_USERS_BY_IDS = select(UserRow).where(UserRow.user_id.in_(bindparam("ids", expanding=True)))  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Placements:
    """What the directory says about a bounded sender's batch: where its users are, and
    the parents its own unit has (see ``app.scope.ensure_can_write_about``)."""

    principal: Principal
    users: dict[str, Scope]
    unit_paths: frozenset[tuple[str, ...]]

    def check(self, user_id: str, record: Scope) -> None:
        ensure_can_write_about(self.principal, record, self.users.get(user_id), self.unit_paths)


_PLACEMENT_CHUNK = 1000
_USER_SCOPES = select(UserRow.user_id, *(_column(level) for level in LEVELS))  # type: ignore[call-overload]


def _placement_queries(principal: Principal, user_ids: Iterable[str]) -> list[Any]:
    """The statements behind ``Placements`` for a bounded sender: the unit's distinct paths
    first, then the users' scopes in chunks."""
    depth = bound_depth(principal)
    assert depth is not None, "only a bounded sender's batch is placed"
    level = LEVELS[depth]
    path = [_column(name) for name in LEVELS[: depth + 1]]
    unit = getattr(principal, f"{level}_id")
    queries: list[Any] = [select(*path).where(_column(level) == unit).distinct()]
    ids = sorted(set(user_ids))
    for start in range(0, len(ids), _PLACEMENT_CHUNK):
        chunk = ids[start : start + _PLACEMENT_CHUNK]
        queries.append(_USER_SCOPES.where(UserRow.user_id.in_(chunk)))  # type: ignore[attr-defined]
    return queries


def _placements(principal: Principal, results: list[Any]) -> Placements:
    paths, *users = results
    return Placements(
        principal,
        {row[0]: Scope(*row[1:]) for chunk in users for row in chunk},
        frozenset(tuple(row) for row in paths),
    )


def locate(conn: Connection | Session, principal: Principal, user_ids: Iterable[str]) -> Placements:
    """For a bounded sender's batch (``bound_depth`` is not None; the others write anywhere),
    on the caller's connection: the group-commit writer's, or a session's through ``run_sync``."""
    queries = _placement_queries(principal, user_ids)
    return _placements(principal, [conn.execute(query).all() for query in queries])


def check_can_read(principal: Principal, row: U | None) -> U:
    """Scope check for one user; admins learn a user is missing, others never do."""
    ensure_can_read(principal, scope_of(row) if row is not None else None)
    if row is None:
        raise NotFound("no such user")
    return row


async def ensure_filter_in_tree(session: AsyncSession, principal: Principal, requested: ScopeFilter) -> None:
    """The ids a filter adds to the principal's own must agree with the tree the directory
    knows: a finer id (a branch for a country operator) must not belong to users outside
    the principal's node, and a coarser one (its own country, for a branch operator) must be
    its node's parent. One probe; FORBIDDEN when either is contradicted."""
    bound = principal_bound(principal).pinned()
    depth = bound_depth(principal)
    if depth is None:
        return
    added = {level: value for level, value in requested.pinned().items() if level not in bound}
    finer = {level: value for level, value in added.items() if LEVELS.index(level) > depth}
    coarser = {level: value for level, value in added.items() if LEVELS.index(level) < depth}
    inside = and_(*(_column(level) == value for level, value in bound.items()))
    contradictions = []
    if finer:
        contradictions.append(and_(or_(*(_column(lv) == v for lv, v in finer.items())), ~inside))
    if coarser:
        contradictions.append(and_(inside, or_(*(_column(lv) != v for lv, v in coarser.items()))))
    if contradictions and await session.scalar(select(exists().where(or_(*contradictions)))):
        raise Forbidden("the requested scope is not inside yours")


_PAGE_READS: dict[tuple[tuple[str, ...], bool], Read] = {}


def _page_read(levels: tuple[str, ...], after: bool) -> Read:
    """A page of the directory for the scope levels pinned (a few shapes, each compiled once)."""
    key = (levels, after)
    if key not in _PAGE_READS:
        query = select(*USERS.c).where(
            true(), *(USERS.c[f"{level}_id"] == bindparam(level) for level in levels)
        )
        if after:
            query = query.where(USERS.c.user_id > bindparam("after"))
        query = query.order_by(USERS.c.user_id).limit(bindparam("limit"))
        _PAGE_READS[key] = Read(lambda _ids_in: query)
    return _PAGE_READS[key]


async def list_users(
    session: AsyncSession,
    principal: Principal,
    requested: ScopeFilter | None,
    first: int,
    after: str | None,
    max_page_size: int,
) -> Page[DirectoryEntry]:
    check_page_size(first, max_page_size)
    effective = narrow(principal, requested)
    if requested is not None:
        await ensure_filter_in_tree(session, principal, requested)
    pinned = effective.pinned()
    params: dict[str, Any] = {**pinned, "limit": first + 1}
    if after is not None:
        params["after"] = decode_cursor(CURSOR_KIND, after)
    found = await _page_read(tuple(pinned), after is not None).all(session, params)
    rows = [DirectoryEntry._make(row) for row in found]
    has_next = len(rows) > first
    rows = rows[:first]
    return Page(rows, [encode_cursor(CURSOR_KIND, r.user_id) for r in rows], has_next)


@dataclass(frozen=True, slots=True)
class NewUser:
    user_id: str
    name: str
    scope: Scope


def validate_new_user(user: NewUser) -> NewUser:
    check_id("userId", user.user_id)
    check_text("name", user.name)
    for level in LEVELS:
        check_id(f"{level}Id", user.scope.id_at(level))
    return user


def audit_view(row: UserRow) -> dict[str, str]:
    """What the audit log keeps of a user: the fields an admin changes."""
    return {
        "userId": row.user_id,
        "name": row.name,
        "regionId": row.region_id,
        "countryId": row.country_id,
        "branchId": row.branch_id,
        "teamId": row.team_id,
    }


@dataclass(frozen=True, slots=True)
class Move:
    """A user joining the directory or moving in it, and what its audit entry keeps."""

    user_id: str
    joins: bool
    values: dict[str, str]  # the columns it sets: the scope ids, and the name if it changes
    before: dict[str, Any] | None
    after: dict[str, Any]


# ON CONFLICT DO NOTHING waits for a concurrent insert of the same id, then skips it: the
# unique violation two workers' first logs of one new user would otherwise raise.
_JOIN = (
    postgresql.insert(USERS)
    .on_conflict_do_nothing(index_elements=[USERS.c.user_id])
    .returning(USERS.c.user_id)
)


def place_user(
    conn: Connection | Session,
    audit_log: audit.AuditLog,
    principal: Principal,
    move: Move,
    request_id: str,
    now: datetime,
) -> bool:
    """How a user joins or moves, for an admin's registerUser and for a log from a new place
    alike: one INSERT (a new user's name is its id unless given) or UPDATE, and its
    register_user audit entry, in the caller's transaction.

    False, having changed nothing, when the user was to join but a concurrent transaction (on
    another worker) added it first: the caller reads the user again and decides. A move that
    changes nothing (the same name and scope again) writes nothing and is not audited."""
    if not move.joins and move.before == move.after:
        return True
    if move.joins:
        values = {"name": move.user_id} | move.values
        row = {"user_id": move.user_id, "created_at": now, "updated_at": now, **values}
        if conn.execute(_JOIN, row).first() is None:
            return False
    else:
        conn.execute(
            USERS.update().where(USERS.c.user_id == move.user_id).values(updated_at=now, **move.values)
        )
    audit_log.append(
        conn,
        principal,
        action=audit.AuditAction.REGISTER_USER,
        target=f"user:{move.user_id}",
        before=move.before,
        after=move.after,
        request_id=request_id,
        user_id=move.user_id,
    )
    return True


_USER_FOR_UPDATE = select(USERS).where(USERS.c.user_id == bindparam("user_id")).with_for_update()


async def register_user(
    db: Database, audit_log: audit.AuditLog, principal: Principal, user: NewUser, request_id: str
) -> UserRow:
    """Create the user, or move an existing one to the given name and scope (admin), in one
    transaction with its audit entry (the user before and after)."""
    if not principal.is_admin:
        raise Forbidden(f"role {principal.role.value} may not register users")
    validate_new_user(user)
    async with db.transaction() as session:
        return await session.run_sync(_register, audit_log, principal, user, request_id)


def _unchanged(row: UserRow, user: NewUser) -> bool:
    return row.name == user.name and all(
        getattr(row, f"{level}_id") == user.scope.id_at(level) for level in LEVELS
    )


def _register(
    session: Session, audit_log: audit.AuditLog, principal: Principal, user: NewUser, request_id: str
) -> UserRow:
    now = datetime.now(UTC)
    audit_log.lock(session)  # before the user's row: see AuditLog.lock
    found = session.execute(_USER_FOR_UPDATE, {"user_id": user.user_id}).first()
    before = None if found is None else UserRow(**found._mapping)
    if before is not None and _unchanged(before, user):
        return before  # nothing to change, nothing to audit
    row = UserRow(
        user_id=user.user_id,
        name=user.name,
        region_id=user.scope.region_id,
        country_id=user.scope.country_id,
        branch_id=user.scope.branch_id,
        team_id=user.scope.team_id,
        created_at=now if before is None else before.created_at,
        updated_at=now,
    )
    move = Move(
        user.user_id,
        joins=before is None,
        values={"name": user.name} | {f"{level}_id": user.scope.id_at(level) for level in LEVELS},
        before=None if before is None else audit_view(before),
        after=audit_view(row),
    )
    if not place_user(session, audit_log, principal, move, request_id, now):
        return _register(session, audit_log, principal, user, request_id)  # now found, and locked
    return row


__all__ = [
    "Move",
    "NewUser",
    "audit_view",
    "check_can_read",
    "list_users",
    "locate",
    "place_user",
    "register_user",
    "scope_of",
    "users_by_ids",
]
