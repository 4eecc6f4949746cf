"""Types shared by every domain: scope and pagination."""

from __future__ import annotations

from typing import Any

import strawberry

from app.pagination import Page
from app.scope import Scope, ScopeFilter


@strawberry.type(name="Scope", description="Where a user or record sits in the organisation.")
class ScopeType:
    region_id: str
    country_id: str
    branch_id: str
    team_id: str

    @classmethod
    def from_row(cls, scope: Scope) -> ScopeType:
        return cls(
            region_id=scope.region_id,
            country_id=scope.country_id,
            branch_id=scope.branch_id,
            team_id=scope.team_id,
        )


@strawberry.input(description="Narrow a list to part of the organisation; omitted ids match any.")
class ScopeFilterInput:
    region_id: str | None = None
    country_id: str | None = None
    branch_id: str | None = None
    team_id: str | None = None

    def to_value(self) -> ScopeFilter:
        return ScopeFilter(self.region_id, self.country_id, self.branch_id, self.team_id)


@strawberry.input(name="ScopeInput", description="All four scope ids of a record.")
class ScopeInput:
    region_id: str
    country_id: str
    branch_id: str
    team_id: str

    def to_value(self) -> Scope:
        return Scope(self.region_id, self.country_id, self.branch_id, self.team_id)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None

    @classmethod
    def from_row(cls, page: Page[Any]) -> PageInfo:
        return cls(has_next_page=page.has_next_page, end_cursor=page.cursors[-1] if page.cursors else None)
