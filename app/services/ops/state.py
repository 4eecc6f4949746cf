"""The per-process view of the ops settings, and the one way to change them.

Every worker keeps the settings engines obey (model config, toggles, limits, active rulesets)
in memory and checks ``ops_state.version`` at most every ``TRAINER_OPS_REFRESH_SECONDS``
(0.5 s): one primary-key read, and a reload only when the version moved. So reading the limits
costs no database round trip per operation, and a change made through any worker reaches
every other worker within milliseconds (the worker that made it sees it at once).

A committed change is also pushed: the worker that made it publishes ``ops`` on the
deployment's live-update bus (``app.coordination``), and every other worker checks at once, so
the polling is only the safety net for a lost message.

The check and the reload use their own one-connection pool: they never wait behind request
traffic for a pooled connection, and a request's own statements stay exactly what its
resolvers send. That pool is closed whenever the main engine is disposed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.auth import Principal
from app.coordination import Coordination, build_coordination
from app.services.audit import AuditLog
from app.services.ops.catalog import SETTING_LIMITS, SETTING_MODEL_CONFIG, RulesetState, RulesetType
from app.services.ops.diagnostics import OperationMetrics, ProcessSampler
from app.services.ops.values import (
    ActiveRuleset,
    Limits,
    ModelConfig,
    OpsSnapshot,
    Stamp,
    Toggle,
)
from app.settings import Settings
from app.times import as_utc
from persistence.db import Database, create_engine
from persistence.models.ops import (
    ActiveRulesetRow,
    FeatureToggleRow,
    OpsSettingRow,
    OpsStateRow,
    RulesetRow,
)

log = logging.getLogger("trainer_console.ops")


class StoredSetting(Protocol):
    def to_json(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=StoredSetting)

STATE_ID = 1
# The live-update topic of a committed ops change: every other worker checks its cache at once.
OPS_TOPIC = "ops"


async def read_version(session: AsyncSession) -> int:
    version = await session.scalar(select(col(OpsStateRow.version)).where(col(OpsStateRow.id) == STATE_ID))
    if version is None:
        raise RuntimeError("ops_state is empty: run `trainer-console migrate`")
    return int(version)


def active_view(row: ActiveRulesetRow, ruleset: RulesetRow | None) -> ActiveRuleset:
    """An engine type's ruleset state, with the ruleset it names (None once that is gone)."""
    return ActiveRuleset(
        type=RulesetType(row.engine_type),
        ruleset_id=row.ruleset_id,
        declared_version=ruleset.declared_version if ruleset is not None else None,
        document=ruleset.document if ruleset is not None else None,
        activated_at=as_utc(row.activated_at) if row.activated_at else None,
        activated_by=row.activated_by,
        state=RulesetState(row.state),
        failed_target_id=row.failed_target_id,
        last_error=row.last_error,
        failed_at=as_utc(row.failed_at) if row.failed_at else None,
    )


async def load_snapshot(session: AsyncSession) -> OpsSnapshot:
    """Read everything engines obey (the version first: a later commit only makes it look older)."""
    version = await read_version(session)
    settings = {row.key: row for row in (await session.scalars(select(OpsSettingRow))).all()}
    toggles = (await session.scalars(select(FeatureToggleRow).order_by(FeatureToggleRow.key))).all()
    active = (
        await session.execute(
            select(ActiveRulesetRow, RulesetRow).outerjoin(
                RulesetRow,
                col(RulesetRow.ruleset_id) == col(ActiveRulesetRow.ruleset_id),
            )
        )
    ).all()
    model_row, limits_row = settings[SETTING_MODEL_CONFIG], settings[SETTING_LIMITS]
    rulesets = {RulesetType(state.engine_type): active_view(state, ruleset) for state, ruleset in active}
    return OpsSnapshot(
        version=version,
        model_config=ModelConfig.from_json(model_row.value),
        model_config_stamp=Stamp(as_utc(model_row.updated_at), model_row.updated_by),
        limits=Limits.from_json(limits_row.value),
        limits_stamp=Stamp(as_utc(limits_row.updated_at), limits_row.updated_by),
        toggles=tuple(
            Toggle(
                t.key, t.enabled, t.description, t.region_flippable, Stamp(as_utc(t.updated_at), t.updated_by)
            )
            for t in toggles
        ),
        rulesets={kind: rulesets[kind] for kind in RulesetType if kind in rulesets},
    )


class OpsRuntime:
    """One per app (worker process): the cached settings, the limiters, the metrics, and the
    audit log every change is recorded in (built once with its key)."""

    def __init__(self, settings: Settings, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.db = db
        self.audit = AuditLog(settings.audit_secret)
        self._engine = create_engine(settings.model_copy(update={"db_pool_size": 1}))
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        event.listen(db.engine.sync_engine, "engine_disposed", lambda _: self._engine.sync_engine.dispose())
        self.refresh_seconds = settings.ops_refresh_seconds
        self.started = clock()
        self._clock = clock
        self._snapshot: OpsSnapshot | None = None
        self._checked_at = -float("inf")
        self._generation = 0
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        # The engine limits and the live-update bus, shared by the deployment's workers.
        self.coordination: Coordination = build_coordination(settings)
        self.coordination.subscribe(self._heard)
        self.coordination.on_resume(self.invalidate)
        db.on_dispose(self.coordination.close)
        self.metrics = OperationMetrics(settings.ops_diagnostics_window_seconds, clock=clock)
        self.sampler = ProcessSampler()

    def uptime_seconds(self) -> float:
        return self._clock() - self.started

    def invalidate(self) -> None:
        """After a commit here or elsewhere: the next read checks the database."""
        self._generation += 1
        self._checked_at = -float("inf")

    def _heard(self, topic: str) -> None:
        """Another worker committed an ops change: reload now, not at the next poll."""
        if topic == OPS_TOPIC:
            self.invalidate()
            self.peek()

    def peek(self) -> OpsSnapshot | None:
        """The cached settings without waiting (for synchronous per-operation hooks); when a
        check is due it runs in the background. HTTP requests have already awaited ``current``
        in the body-size middleware, so only WebSocket operations ever see a due check here."""
        if self._clock() - self._checked_at >= self.refresh_seconds and self._background is None:
            self._background = asyncio.get_running_loop().create_task(self._refresh_in_background())
        return self._snapshot

    async def _refresh_in_background(self) -> None:
        try:
            await self.current()
        except Exception:
            log.warning("could not load the ops settings", exc_info=True)
        finally:
            self._background = None

    async def current(self) -> OpsSnapshot:
        """The settings now in force; a database read at most every refresh interval."""
        snapshot = self._snapshot
        age = self._clock() - self._checked_at
        if snapshot is not None and age < self.refresh_seconds:
            return snapshot
        if snapshot is not None and self._lock.locked() and age < 4 * self.refresh_seconds:
            return snapshot  # another task is checking; this one was verified a moment ago
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> OpsSnapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - self._checked_at < self.refresh_seconds:
            return snapshot
        generation, started = self._generation, self._clock()
        try:
            async with self._sessions() as session:
                if snapshot is None or await read_version(session) != snapshot.version:
                    snapshot = await load_snapshot(session)
        except Exception:
            if snapshot is None:
                raise
            # Keep serving the last known settings; retry after the next interval.
            log.warning(
                "could not refresh the ops settings; keeping version %s", snapshot.version, exc_info=True
            )
            self._checked_at = started
            return snapshot
        self._snapshot = snapshot
        if generation == self._generation:
            self._checked_at = started
        return snapshot

    @asynccontextmanager
    async def change(self) -> AsyncIterator[AsyncSession]:
        """A transaction that changes ops state: bumps ``ops_state.version`` first (which also
        serialises concurrent changes on its row lock) and refreshes this worker after commit."""
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    update(OpsStateRow)
                    .where(col(OpsStateRow.id) == STATE_ID)
                    .values(version=OpsStateRow.version + 1, changed_at=datetime.now(UTC))
                )
                yield session
        except BaseException:
            self.invalidate()
            raise
        self.invalidate()
        self.coordination.publish(OPS_TOPIC)

    async def change_setting(
        self,
        key: str,
        principal: Principal,
        action: str,
        request_id: str,
        parse: Callable[[Mapping[str, Any]], S],
        patch: Callable[[S], S],
    ) -> tuple[S, Stamp]:
        """Patch one stored setting (model config, limits): validated as a whole by ``patch``,
        stamped and audited in the same change."""
        async with self.change() as session:
            row = await session.get(OpsSettingRow, key)
            assert row is not None, f"migration 0005 seeds the {key} setting"
            before = parse(row.value)
            after = patch(before)
            stamp = Stamp(datetime.now(UTC), principal.sub)
            row.value, row.updated_at, row.updated_by = after.to_json(), stamp.at, stamp.by
            await session.run_sync(
                self.audit.append,
                principal,
                action=action,
                target=key,
                before=before.to_json(),
                after=after.to_json(),
                request_id=request_id,
            )
        return after, stamp
