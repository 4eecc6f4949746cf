"""Limits (ops §6): the stored values, read, updated and (for the body size) put in force.

``app.services.ops.enforcement`` says what each limit counts and holds the per-principal
counters; ``graphql_schema.guard`` charges them on every query and mutation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.auth import Principal
from app.services.ops.catalog import ACTION_UPDATE_LIMITS, SETTING_LIMITS
from app.services.ops.state import OpsRuntime
from app.services.ops.values import Limits, Stamp, patch_limits
from persistence.models.ops import OpsSettingRow

log = logging.getLogger("trainer_console.limits")


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


def live_body_limit(ops: OpsRuntime) -> Callable[[], Awaitable[int | None]]:
    """The body-size limit in force (fileUploadLimitMb), for BodySizeLimit; None if unknown."""

    async def limit() -> int | None:
        try:
            return (await ops.current()).limits.file_upload_limit_bytes
        except Exception:  # the static ceiling still applies; never fail a request on this
            log.warning("fileUploadLimitMb unavailable; only TRAINER_MAX_BODY_BYTES applies", exc_info=True)
            return None

    return limit
