"""Principal and user-directory types."""

from __future__ import annotations

from typing import cast

import strawberry

from app.auth import Principal, Role
from app.pagination import Page
from app.services.directory import DirectoryEntry, UserFields, scope_of
from app.services.upm import profile
from app.services.upm import service as upm
from graphql_schema.info import Info
from graphql_schema.types.common import PageInfo, ScopeInput, ScopeType
from graphql_schema.types.upm import Performance

RoleType = strawberry.enum(Role, name="Role")


@strawberry.type(name="Principal", description="The caller, as its token says.")
class PrincipalType:
    sub: str
    role: RoleType  # type: ignore[valid-type]
    region_id: str | None
    country_id: str | None
    branch_id: str | None

    @classmethod
    def from_row(cls, principal: Principal) -> PrincipalType:
        return cls(
            sub=principal.sub,
            role=principal.role,
            region_id=principal.region_id,
            country_id=principal.country_id,
            branch_id=principal.branch_id,
        )


@strawberry.type
class User:
    user_id: str
    name: str
    _row: strawberry.Private[UserFields]

    @strawberry.field
    def scope(self) -> ScopeType:
        """Built when asked for: a dashboard page rarely does."""
        return ScopeType.from_row(scope_of(self._row))

    @strawberry.field(description="The UPM aggregated profile (upm §1); batched across a page.")
    def performance(self, info: Info) -> Performance:
        """Synchronous when the page prefetched its profiles (``DirectoryQuery.users``): a page
        of 100 then completes without 100 awaitables and their tasks. Otherwise an awaitable,
        batched by the loader."""
        ctx = info.context
        rows = ctx.loaders.profile_rows_by_user_id.ready(self.user_id)
        snapshot = ctx.ops.peek()
        if rows is None or snapshot is None:
            return cast(Performance, self._load_performance(info))
        return Performance.from_row(profile.build(self.user_id, rows, upm.active_ruleset(snapshot)))

    async def _load_performance(self, info: Info) -> Performance:
        ctx = info.context
        rows = await ctx.loaders.profile_rows_by_user_id.load(self.user_id)
        return Performance.from_row(
            profile.build(self.user_id, rows, upm.active_ruleset(await ctx.ops.current()))
        )

    @classmethod
    def from_row(cls, row: UserFields) -> User:
        return cls(user_id=row.user_id, name=row.name, _row=row)


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's users without their cursors.")
    def nodes(self) -> list[User]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_row(cls, page: Page[DirectoryEntry]) -> UserConnection:
        edges = [
            UserEdge(cursor=cursor, node=User.from_row(row))
            for row, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return cls(edges=edges, page_info=PageInfo.from_row(page))


@strawberry.input
class RegisterUserInput:
    user_id: str
    name: str
    scope: ScopeInput
