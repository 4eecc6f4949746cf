"""Rulesets and hot reload (ops §3, upm §9).

A ruleset is an immutable, versioned document for one engine type, validated on upload: the
``upm`` type against ``app.services.upm.ruleset.UpmRuleset``, the others as JSON objects that
declare a ``version`` (until their engines define more). ``hotReload`` makes one the active
ruleset of its type; every worker picks it up within a refresh interval, without a restart.
A missing or invalid target fails with E_RELOAD_FAILED: the previous ruleset stays active and
the type is ``degraded`` (health shows it) until a reload succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth import Principal
from app.errors import ReloadFailed, SchemaMismatch
from app.services.ops import policy
from app.services.ops.catalog import ACTION_HOT_RELOAD, ACTION_UPLOAD_RULESET, RulesetState, RulesetType
from app.services.ops.documents import content_hash, validate_document
from app.services.ops.state import OpsRuntime, active_view
from app.services.ops.values import ActiveRuleset
from app.validation import check_id, check_page_size, is_id
from persistence.models.ops import ActiveRulesetRow, RulesetRow


def _problem(kind: RulesetType, target_id: str, row: RulesetRow | None) -> str | None:
    """Why ``row`` cannot become the active ruleset of ``kind``; None if it can."""
    if row is None:
        return f"no ruleset {target_id[:128]!r}"
    if row.engine_type != kind.value:
        return f"ruleset {target_id!r} is a {row.engine_type} ruleset, not {kind.value}"
    if content_hash(row.document) != row.content_hash:
        return f"ruleset {target_id!r} does not match its content hash"
    try:
        validate_document(kind, row.document)
    except SchemaMismatch as exc:
        return exc.message
    return None


@dataclass(frozen=True, slots=True)
class RulesetView:
    row: RulesetRow
    active: bool


@dataclass(frozen=True, slots=True)
class ReloadResult:
    type: RulesetType
    target_id: str
    previous_ruleset_id: str | None
    active: ActiveRuleset


def _state_json(row: ActiveRulesetRow) -> dict[str, Any]:
    return {"activeRulesetId": row.ruleset_id, "state": row.state}


async def by_id(session: AsyncSession, ruleset_id: str) -> RulesetRow | None:
    rows = await session.scalars(select(RulesetRow).where(col(RulesetRow.ruleset_id) == ruleset_id))
    return rows.first()


def activate(row: ActiveRulesetRow, ruleset_id: str | None, principal: Principal, at: datetime) -> None:
    """Make ``ruleset_id`` the active one and clear any failed-reload state."""
    row.ruleset_id, row.activated_at, row.activated_by = ruleset_id, at, principal.sub
    row.state = RulesetState.ok.value
    row.failed_target_id = row.last_error = row.failed_at = None


async def ensure_activatable(session: AsyncSession, kind: RulesetType, ruleset_id: str) -> RulesetRow:
    """The ruleset row if it may run as ``kind``; E_RELOAD_FAILED otherwise."""
    row = await by_id(session, ruleset_id)
    problem = _problem(kind, ruleset_id, row)
    if problem is not None or row is None:
        raise ReloadFailed(problem or "", type=kind.value, targetId=ruleset_id)
    return row


async def upload(
    ops: OpsRuntime,
    principal: Principal,
    kind: RulesetType,
    ruleset_id: str,
    document: Any,
    request_id: str,
) -> RulesetView:
    """Store a new ruleset (not yet active). Ids are never reused: E_SCHEMA_MISMATCH."""
    check_id("rulesetId", ruleset_id)
    version = validate_document(kind, document)
    async with ops.change() as session:
        if await by_id(session, ruleset_id) is not None:
            raise SchemaMismatch(
                f"ruleset {ruleset_id!r} exists; rulesets are immutable, upload under a new id",
                field="rulesetId",
            )
        row = RulesetRow(
            ruleset_id=ruleset_id,
            engine_type=kind.value,
            declared_version=version,
            document=document,
            content_hash=content_hash(document),
            uploaded_at=datetime.now(UTC),
            uploaded_by=principal.sub,
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent upload of the same id won
            raise SchemaMismatch(f"ruleset {ruleset_id!r} exists", field="rulesetId") from exc
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_UPLOAD_RULESET,
            target=f"ruleset:{ruleset_id}",
            before=None,
            after={
                "type": kind.value,
                "rulesetId": ruleset_id,
                "version": version,
                "contentHash": row.content_hash,
            },
            request_id=request_id,
        )
    return RulesetView(row, active=False)


async def list_rulesets(
    ops: OpsRuntime,
    principal: Principal,
    kind: RulesetType,
    active_only: bool,
    first: int,
) -> list[RulesetView]:
    """Newest first; ``active`` is what this worker runs."""
    policy.ensure_can_read_rulesets(principal, kind)
    check_page_size(first, ops.settings.max_page_size)
    active_id = (await ops.current()).rulesets[kind].ruleset_id
    query = select(RulesetRow).where(col(RulesetRow.engine_type) == kind.value)
    if active_only:
        query = query.where(col(RulesetRow.ruleset_id) == active_id)
    query = query.order_by(col(RulesetRow.seq).desc()).limit(first)
    async with ops.db.session() as session:
        rows = (await session.scalars(query)).all()
    return [RulesetView(row, row.ruleset_id == active_id) for row in rows]


async def hot_reload(
    ops: OpsRuntime, principal: Principal, kind: RulesetType, target_id: str, request_id: str
) -> ReloadResult:
    """Activate ``target_id`` for ``kind``, or record the failure and keep the previous one.

    The failure is committed (degraded state and its audit entry) before E_RELOAD_FAILED is
    raised, so health reports it on every worker.
    """
    policy.ensure_can_reload(principal, kind)
    async with ops.change() as session:
        state = await session.get(ActiveRulesetRow, kind.value)
        assert state is not None, "migration 0005 seeds one row per type"
        # ruleset ids are ids (upload checks them): another text names none, and is not looked
        # up (PostgreSQL refuses a NUL)
        target = await by_id(session, target_id) if is_id(target_id) else None
        problem = _problem(kind, target_id, target)
        before, previous, now = _state_json(state), state.ruleset_id, datetime.now(UTC)
        if problem is None:
            activate(state, target_id, principal, now)
            after = _state_json(state)
        else:
            recorded = target_id.replace("\x00", "\ufffd")  # what PostgreSQL can hold
            state.state, state.failed_target_id = RulesetState.degraded.value, recorded[:128]
            state.last_error, state.failed_at = problem, now
            after = {**_state_json(state), "failedTargetId": recorded, "error": problem}
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_HOT_RELOAD,
            target=f"ruleset:{kind.value}",
            before=before,
            after=after,
            request_id=request_id,
        )
        current = await by_id(session, state.ruleset_id) if state.ruleset_id else None
        active = active_view(state, current)
    if problem is not None:
        kept = f"{previous!r} stays active" if previous else "the type stays without a ruleset"
        raise ReloadFailed(
            f"hot reload of {kind.value} to {target_id!r} failed: {problem}; {kept}",
            type=kind.value,
            targetId=target_id,
            activeRulesetId=previous,
        )
    return ReloadResult(kind, target_id, previous, active)
