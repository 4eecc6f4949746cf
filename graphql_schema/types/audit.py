"""Audit-log types (ops §7, §9): entries, their page, and a chain verification."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.pagination import Page
from app.services.audit import Verification, category_of
from app.times import as_utc
from graphql_schema.types.common import PageInfo
from persistence.models import AuditEntryRow


@strawberry.type(description="One change made through the API, as the hash chain recorded it.")
class AuditEntry:
    seq: int = strawberry.field(description="Gapless position in the chain, from 1.")
    at: datetime = strawberry.field(description="When the change was committed (UTC).")
    actor_sub: str
    actor_role: str
    action: str = strawberry.field(description="What was done, e.g. register_user, hot_reload.")
    category: str = strawberry.field(description="The action's §7.1 category: predict, publish, ...")
    target: str = strawberry.field(description="What was changed, as kind:id (e.g. user:u_01).")
    before: JSON | None = strawberry.field(description="The target before the change; null if new.")
    after: JSON | None = strawberry.field(description="The target after the change.")
    request_id: str
    user_id: str = strawberry.field(description="The user the change is about, else the actor's sub.")
    prev_hash: str
    entry_hash: str = strawberry.field(description="HMAC-SHA256 over the entry's canonical JSON.")

    @classmethod
    def from_row(cls, row: AuditEntryRow) -> AuditEntry:
        return cls(
            seq=row.seq,
            at=as_utc(row.at),
            actor_sub=row.actor_sub,
            actor_role=row.actor_role,
            action=row.action,
            category=category_of(row.action),
            target=row.target,
            before=row.before,
            after=row.after,
            request_id=row.request_id,
            user_id=row.user_id,
            prev_hash=row.prev_hash,
            entry_hash=row.entry_hash,
        )


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's entries without their cursors.")
    def nodes(self) -> list[AuditEntry]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_row(cls, page: Page[AuditEntryRow]) -> AuditEntryConnection:
        edges = [
            AuditEntryEdge(cursor=cursor, node=AuditEntry.from_row(row))
            for row, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return cls(edges=edges, page_info=PageInfo.from_row(page))


@strawberry.type(description="The result of recomputing the audit hash chain.")
class AuditVerification:
    ok: bool
    checked: int = strawberry.field(description="Entries verified intact (all of them when ok).")
    first_broken_seq: int | None = strawberry.field(description="The first entry that does not hold.")
    reason: str | None
    last_seq: int = strawberry.field(
        description="Seq of the last intact entry: keep it with lastHash outside the database as an anchor."
    )
    last_hash: str

    @classmethod
    def from_row(cls, result: Verification) -> AuditVerification:
        return cls(
            ok=result.ok,
            checked=result.checked,
            first_broken_seq=result.first_broken_seq,
            reason=result.reason,
            last_seq=result.last_seq,
            last_hash=result.last_hash,
        )
