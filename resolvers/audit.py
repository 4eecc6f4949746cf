"""The audit log (ops §7.1) and its chain verification; admin only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app import policy
from app.services import audit
from graphql_schema.info import Info
from graphql_schema.permissions import allow
from graphql_schema.types.audit import AuditEntryConnection, AuditVerification


@strawberry.type
class AuditQuery:
    @strawberry.field(
        extensions=[allow(policy.ADMIN)],
        description=(
            "Audit entries, newest first (cursor pagination towards older entries). action is one of "
            "the §7.1 categories (predict, publish, reload, update_config: all their actions) or one "
            "action (e.g. register_user); from is inclusive, to exclusive (UTC when no zone is given)."
        ),
    )
    async def audit_log(
        self,
        info: Info,
        user_id: str | None = None,
        action: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> AuditEntryConnection:
        ctx = info.context
        query = audit.AuditFilter(user_id=user_id, action=action, from_=from_, to=to)
        async with ctx.db.session() as session:
            page = await audit.list_entries(
                session, ctx.principal, query, first, after, ctx.settings.max_page_size
            )
        return AuditEntryConnection.from_row(page)

    @strawberry.field(
        extensions=[allow(policy.ADMIN)],
        description=(
            "Recompute the audit hash chain and report the first broken entry. Pass a lastSeq/lastHash "
            "saved earlier (outside the database) as anchorSeq/anchorHash to also detect entries "
            "removed from the end."
        ),
    )
    async def audit_verify(
        self, info: Info, anchor_seq: int | None = None, anchor_hash: str | None = None
    ) -> AuditVerification:
        ctx = info.context
        async with ctx.db.session() as session:
            result = await audit.verify(session, ctx.principal, ctx.ops.audit, anchor_seq, anchor_hash)
        return AuditVerification.from_row(result)
