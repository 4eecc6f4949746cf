"""Limits (ops §6): the stored values, read, updated and (for the body size) put in force.

``app.services.ops.enforcement`` says what each limit counts and holds the per-principal
counters; ``graphql_schema.guard`` charges them on every query and mutation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.auth import Principal
from app.services.ops.catalog import ACTION_UPDATE_LIMITS, SETTING_LIMITS
from app.services.ops.state import OpsRuntime
from app.services.ops.values import Limits, Stamp, patch_limits

log = logging.getLogger("trainer_console.limits")


async def read(ops: OpsRuntime) -> tuple[Limits, Stamp]:
    snapshot = await ops.current()
    return snapshot.limits, snapshot.limits_stamp


async def update(
    ops: OpsRuntime, principal: Principal, patch: Mapping[str, Any], request_id: str
) -> tuple[Limits, Stamp]:
    """Partial update; applies to this worker's next request, to the others within a refresh."""
    return await ops.change_setting(
        SETTING_LIMITS,
        principal,
        ACTION_UPDATE_LIMITS,
        request_id,
        Limits.from_json,
        lambda before: patch_limits(before, patch),
    )


def live_body_limit(ops: OpsRuntime) -> Callable[[], Awaitable[int | None]]:
    """The body-size limit in force (fileUploadLimitMb), for BodySizeLimit; None if unknown."""

    async def limit() -> int | None:
        try:
            return (await ops.current()).limits.file_upload_limit_bytes
        except Exception:  # the static ceiling still applies; never fail a request on this
            log.warning("fileUploadLimitMb unavailable; only TRAINER_MAX_BODY_BYTES applies", exc_info=True)
            return None

    return limit
