"""Limits (ops §6): the stored values; ``app.limits`` enforces them on every operation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.auth import Principal
from app.services.ops.catalog import ACTION_UPDATE_LIMITS, SETTING_LIMITS
from app.services.ops.state import OpsRuntime
from app.services.ops.values import Limits, Stamp, patch_limits
from persistence.models.ops import OpsSettingRow


async def read(ops: OpsRuntime) -> tuple[Limits, Stamp]:
    snapshot = await ops.current()
    return snapshot.limits, snapshot.limits_stamp


async def update(
    ops: OpsRuntime, principal: Principal, patch: Mapping[str, Any], request_id: str
) -> tuple[Limits, Stamp]:
    """Partial update; applies to this worker's next request, to the others within a refresh."""
    async with ops.change() as session:
        row = await session.get(OpsSettingRow, SETTING_LIMITS)
        assert row is not None, "migration 0005 seeds the limits"
        before = Limits.from_json(row.value)
        after = patch_limits(before, patch)
        stamp = Stamp(datetime.now(UTC), principal.sub)
        row.value, row.updated_at, row.updated_by = after.to_json(), stamp.at, stamp.by
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_UPDATE_LIMITS,
            target="limits",
            before=before.to_json(),
            after=after.to_json(),
            request_id=request_id,
        )
    return after, stamp
