"""Field permissions: each root field names the set of roles (``app.policy``) that may call it."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission, PermissionExtension

from app.errors import Forbidden
from app.policy import Roles
from graphql_schema.info import Info


class HasRole(BasePermission):
    """The caller is authenticated and holds one of the roles.

    Raising domain errors (rather than returning False) keeps the contract's
    UNAUTHENTICATED / FORBIDDEN codes on the response.
    """

    def __init__(self, roles: Roles) -> None:
        self.roles = roles

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal  # raises UNAUTHENTICATED
        if principal.role not in self.roles:
            raise Forbidden(f"role {principal.role.value} may not do this")
        return True


def allow(roles: Roles) -> PermissionExtension:
    return PermissionExtension([HasRole(roles)], use_directives=False)
