"""Who am I, and the user directory."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types.nodes import SelectedField

from app import policy
from app.services import directory
from graphql_schema.info import Info
from graphql_schema.permissions import allow
from graphql_schema.types.common import ScopeFilterInput
from graphql_schema.types.directory import PrincipalType, RegisterUserInput, User, UserConnection


def _fields(selections: list[Any]) -> list[Any]:
    """The fields of a selection, through fragments and inline fragments."""
    found: list[Any] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            found.append(selection)
        else:
            found.extend(_fields(selection.selections))
    return found


def _selects_performance(info: Info) -> bool:
    """Whether the page's users are asked for their performance (through nodes or edges)."""
    for part in _fields([s for field in info.selected_fields for s in field.selections]):
        users = [part] if part.name == "nodes" else []
        if part.name == "edges":
            users = [edge for edge in _fields(part.selections) if edge.name == "node"]
        if any(field.name == "performance" for user in users for field in _fields(user.selections)):
            return True
    return False


@strawberry.type
class DirectoryQuery:
    @strawberry.field(extensions=[allow(policy.ANYONE)], description="The calling principal.")
    def me(self, info: Info) -> PrincipalType:
        return PrincipalType.from_row(info.context.principal)

    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="One user. FORBIDDEN outside your scope, whether or not the user exists.",
    )
    async def user(self, info: Info, id: strawberry.ID) -> User:
        row = await info.context.loaders.user_by_id.load(str(id))
        return User.from_row(directory.check_can_read(info.context.principal, row))

    @strawberry.field(
        extensions=[allow(policy.OPERATORS)],
        description="Users inside your scope, ordered by userId (cursor pagination).",
    )
    async def users(
        self,
        info: Info,
        scope: ScopeFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> UserConnection:
        ctx = info.context
        async with ctx.db.session() as session:
            page = await directory.list_users(
                session,
                ctx.principal,
                scope.to_value() if scope else None,
                first,
                after,
                ctx.settings.max_page_size,
            )
            if page.items and _selects_performance(info):
                await ctx.ops.current()  # (fresh settings, so the nodes' rulesets can be read at once)
                await ctx.loaders.profile_rows_by_user_id.prefetch(session, [r.user_id for r in page.items])
        ctx.loaders.user_by_id.prime_many({row.user_id: row for row in page.items})
        return UserConnection.from_row(page)


@strawberry.type
class DirectoryMutation:
    @strawberry.mutation(
        extensions=[allow(policy.ADMIN)],
        description="Create a user, or move an existing one to a new name/scope (admin).",
    )
    async def register_user(self, info: Info, input: RegisterUserInput) -> User:
        ctx = info.context
        new = directory.NewUser(input.user_id, input.name, input.scope.to_value())
        row = await directory.register_user(ctx.db, ctx.ops.audit, ctx.principal, new, ctx.request_id)
        return User.from_row(row)
