"""Releases and rollback (ops §4).

A release snapshots everything engines obey: model config, limits, every feature toggle and
the active ruleset per type (rulesets are immutable, so their ids suffice). ``rollbackRelease``
restores one snapshot in a single transaction (every value is re-validated first; if any part
cannot be restored, nothing is) and appends a rollback entry; the history is append-only in the
database. The current release is the one most recently created or rolled back to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth import Principal
from app.errors import NotFound, SchemaMismatch
from app.services.ops import rulesets
from app.services.ops.catalog import (
    ACTION_CREATE_RELEASE,
    ACTION_ROLLBACK_RELEASE,
    RELEASE_ENGINES,
    SETTING_LIMITS,
    SETTING_MODEL_CONFIG,
    ReleaseKind,
    RulesetState,
    RulesetType,
)
from app.services.ops.state import OpsRuntime
from app.services.ops.values import Limits, ModelConfig, patch_limits, patch_model_config
from app.validation import check_text
from persistence.models.ops import ActiveRulesetRow, FeatureToggleRow, OpsSettingRow, ReleaseRow

SEMVER = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
MAX_NOTES = 2000


def parse_version(version: str) -> tuple[int, int, int]:
    match = SEMVER.match(version)
    if match is None:
        raise SchemaMismatch("version must be semantic: MAJOR.MINOR.PATCH, e.g. 1.0.6", field="version")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _included(engines: Sequence[str]) -> list[str]:
    unknown = sorted(set(engines) - set(RELEASE_ENGINES))
    if unknown:
        raise SchemaMismatch(
            f"unknown engine(s) {', '.join(unknown)}; includedEngines are from: {', '.join(RELEASE_ENGINES)}",
            field="includedEngines",
        )
    if len(set(engines)) != len(engines):
        raise SchemaMismatch("includedEngines lists an engine twice", field="includedEngines")
    return list(engines)


@dataclass(frozen=True, slots=True)
class ReleaseView:
    row: ReleaseRow
    current: bool

    @property
    def effective_version(self) -> str:
        return str(self.row.version or self.row.target_version)


def _effective(row: ReleaseRow) -> str:
    return str(row.version if row.kind == ReleaseKind.release.value else row.target_version)


async def _history(session: AsyncSession) -> list[ReleaseRow]:
    return list((await session.scalars(select(ReleaseRow).order_by(col(ReleaseRow.seq)))).all())


async def take_snapshot(session: AsyncSession) -> dict[str, Any]:
    """What engines obey right now, read inside the caller's transaction (not the cache)."""
    settings = {row.key: row.value for row in (await session.scalars(select(OpsSettingRow))).all()}
    toggles = (await session.scalars(select(FeatureToggleRow).order_by(FeatureToggleRow.key))).all()
    active = (await session.scalars(select(ActiveRulesetRow))).all()
    by_type = {row.engine_type: row.ruleset_id for row in active}
    return {
        "modelConfig": settings[SETTING_MODEL_CONFIG],
        "limits": settings[SETTING_LIMITS],
        "features": {toggle.key: toggle.enabled for toggle in toggles},
        "rulesets": {kind.value: by_type.get(kind.value) for kind in RulesetType},
    }


async def list_releases(ops: OpsRuntime) -> list[ReleaseView]:
    """The whole history, oldest first (the spec's order); the last entry decides ``current``."""
    async with ops.db.session() as session:
        history = await _history(session)
    return _views(history)


def _views(history: list[ReleaseRow]) -> list[ReleaseView]:
    if not history:
        return []
    current = _effective(history[-1])
    return [
        ReleaseView(row, row.kind == ReleaseKind.release.value and row.version == current) for row in history
    ]


async def create_release(
    ops: OpsRuntime,
    principal: Principal,
    version: str,
    notes: str,
    included_engines: Sequence[str],
    request_id: str,
) -> ReleaseView:
    """Record a release; its version must be new and above every earlier one."""
    wanted = parse_version(version)
    check_text("notes", notes, MAX_NOTES)
    engines = _included(included_engines)
    async with ops.change() as session:
        released = [row.version for row in await _history(session) if row.version is not None]
        if version in released:
            raise SchemaMismatch(f"release {version} exists", field="version")
        highest = max(released, key=parse_version, default=None)
        if highest is not None and wanted <= parse_version(highest):
            raise SchemaMismatch(f"version must be above the latest release {highest}", field="version")
        snapshot = await take_snapshot(session)
        row = ReleaseRow(
            kind=ReleaseKind.release.value,
            version=version,
            notes=notes,
            included_engines=engines,
            snapshot=snapshot,
            created_at=datetime.now(UTC),
            created_by=principal.sub,
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise SchemaMismatch(f"release {version} exists", field="version") from exc
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_CREATE_RELEASE,
            target=f"release:{version}",
            before=None,
            after={"version": version, "notes": notes, "includedEngines": engines, "snapshot": snapshot},
            request_id=request_id,
        )
    return ReleaseView(row, current=True)


async def _restore(
    session: AsyncSession, ops: OpsRuntime, principal: Principal, snapshot: dict[str, Any]
) -> None:
    """Write a snapshot back; any value that no longer validates aborts the whole transaction."""
    try:
        model_config = ModelConfig.from_json(snapshot["modelConfig"])
        limits = Limits.from_json(snapshot["limits"])
        features, active = dict(snapshot["features"]), dict(snapshot["rulesets"])
    except (KeyError, TypeError) as exc:
        raise SchemaMismatch("the release snapshot is incomplete") from exc
    # Re-validate against today's rules (an allowed model may have been withdrawn since).
    settings = ops.settings
    values = {
        SETTING_MODEL_CONFIG: patch_model_config(
            model_config, model_config.to_json(), settings.ops_allowed_models, settings.ops_max_tokens_bound
        ).to_json(),
        SETTING_LIMITS: patch_limits(limits, limits.to_json()).to_json(),
    }
    now = datetime.now(UTC)
    for key, value in values.items():
        row = await session.get(OpsSettingRow, key)
        assert row is not None, "migration 0005 seeds the settings"
        row.value, row.updated_at, row.updated_by = value, now, principal.sub
    for toggle in (await session.scalars(select(FeatureToggleRow))).all():
        if toggle.key in features and toggle.enabled != bool(features[toggle.key]):
            toggle.enabled, toggle.updated_at, toggle.updated_by = (
                bool(features[toggle.key]),
                now,
                principal.sub,
            )
    for state in (await session.scalars(select(ActiveRulesetRow))).all():
        kind = RulesetType(state.engine_type)
        if kind.value not in active:
            continue
        target = active[kind.value]
        if target is not None:
            await rulesets.ensure_activatable(session, kind, target)
        if target != state.ruleset_id or state.state != RulesetState.ok.value:
            rulesets.activate(state, target, principal, now)


@dataclass(frozen=True, slots=True)
class Rollback:
    restored: ReleaseView
    entry: ReleaseView


async def rollback(ops: OpsRuntime, principal: Principal, target_version: str, request_id: str) -> Rollback:
    """Restore a release atomically and append the rollback entry."""
    parse_version(target_version)
    async with ops.change() as session:
        history = await _history(session)
        target = next((row for row in history if row.version == target_version), None)
        if target is None:
            raise NotFound(f"no release {target_version}", targetVersion=target_version)
        before = await take_snapshot(session)
        await _restore(session, ops, principal, target.snapshot)
        await session.flush()
        after = await take_snapshot(session)
        previous = _effective(history[-1])
        entry = ReleaseRow(
            kind=ReleaseKind.rollback.value,
            target_version=target_version,
            previous_version=previous,
            notes=f"rollback to {target_version} (from {previous})",
            included_engines=list(target.included_engines),
            snapshot=after,
            created_at=datetime.now(UTC),
            created_by=principal.sub,
        )
        session.add(entry)
        await session.flush()
        await session.run_sync(
            ops.audit.append,
            principal,
            action=ACTION_ROLLBACK_RELEASE,
            target=f"release:{target_version}",
            before={"currentVersion": previous, "snapshot": before},
            after={"currentVersion": target_version, "snapshot": after},
            request_id=request_id,
        )
    return Rollback(restored=ReleaseView(target, current=True), entry=ReleaseView(entry, current=False))
