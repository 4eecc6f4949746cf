"""Feature toggles (ops §2), and which of them a region operator may flip (§8)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.auth import Principal
from app.errors import NotFound
from app.services.ops import policy
from app.services.ops.catalog import ACTION_SET_FEATURE_TOGGLE
from app.services.ops.state import OpsRuntime
from app.services.ops.values import Stamp, Toggle
from app.validation import is_id
from persistence.models.ops import FeatureToggleRow


async def list_toggles(ops: OpsRuntime) -> tuple[Toggle, ...]:
    return (await ops.current()).toggles


async def set_toggle(
    ops: OpsRuntime, principal: Principal, key: str, enabled: bool, request_id: str
) -> Toggle:
    """Unknown key: NOT_FOUND; a toggle the caller's role may not flip: FORBIDDEN."""
    async with ops.change() as session:
        # keys are ids: another text (a NUL, which PostgreSQL refuses) names no toggle
        row = await session.get(FeatureToggleRow, key) if is_id(key) else None
        if row is None:
            raise NotFound(f"no feature toggle {key!r}", key=key)
        policy.ensure_can_flip(principal, row.key, row.region_flippable)
        before = row.enabled
        stamp = Stamp(datetime.now(UTC), principal.sub)
        row.enabled, row.updated_at, row.updated_by = enabled, stamp.at, stamp.by
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_SET_FEATURE_TOGGLE,
            target=f"feature:{key}",
            before={"enabled": before},
            after={"enabled": enabled},
            request_id=request_id,
        )
        return Toggle(row.key, enabled, row.description, row.region_flippable, stamp)
