"""Storage of validated raw-log batches (data-layer §3.1-3.3, §6, §7).

Storage is one transaction and one Core executemany per batch. Ids are the
idempotency keys; each row keeps the SHA-256 of its record's canonical JSON so
that a re-send (same hash: DUPLICATE, a no-op) is told apart from a conflicting
record (other hash: REJECTED, nothing changes). The common case, all ids new,
is one optimistic INSERT with no read; when the database reports a collision
(SQLite's trigger silently skips the row so rowcount falls short, PostgreSQL
raises a unique violation) the transaction is rolled back and the batch is
classified against what is stored, then written with INSERT ... ON CONFLICT DO
NOTHING RETURNING, which settles races with concurrent senders exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from app.auth import Principal
from app.errors import OutOfScope, SchemaMismatch
from app.scope import LEVELS, Scope, bound_depth
from app.services import directory
from app.services.ingest.fields import the_batch
from app.services.ingest.validation import KEY_FIELDS, LogKind, RecordError, Row, validate_batch
from app.settings import Settings
from persistence.db import Database
from persistence.models import EventLogRow, InteractionLogRow, SessionLogRow

CONFLICT_STORED = "{name} already stored with different content; corrections are new records with new ids"
CONFLICT_IN_BATCH = "{name} appears earlier in this batch (index {first}) with different content"


@dataclass(frozen=True, slots=True)
class _Target:
    table: sa.Table
    key_column: str
    key_field: str


_TARGETS = {
    LogKind.EVENT: _Target(
        SQLModel.metadata.tables[EventLogRow.__tablename__], "event_id", KEY_FIELDS[LogKind.EVENT]
    ),
    LogKind.INTERACTION: _Target(
        SQLModel.metadata.tables[InteractionLogRow.__tablename__],
        "interaction_id",
        KEY_FIELDS[LogKind.INTERACTION],
    ),
    LogKind.SESSION: _Target(
        SQLModel.metadata.tables[SessionLogRow.__tablename__], "session_id", KEY_FIELDS[LogKind.SESSION]
    ),
}


class RecordStatus(StrEnum):
    ACCEPTED = "ACCEPTED"  # stored by this call
    DUPLICATE = "DUPLICATE"  # already stored with the same content: a no-op
    REJECTED = "REJECTED"  # invalid, out of scope, or its id holds other content
    SKIPPED = "SKIPPED"  # valid, but not stored: another record failed an all-or-nothing batch


@dataclass(slots=True)
class BatchOutcome:
    """Per input index: a status; for each REJECTED record, its error (in index order)."""

    statuses: list[RecordStatus]
    errors: list[RecordError]

    def count(self, status: RecordStatus) -> int:
        return self.statuses.count(status)


class _Collision(Exception):
    """The optimistic insert met an id that is already stored."""


class _Abandon(Exception):
    """An all-or-nothing batch found a conflict after writing: roll back, answer ``outcome``."""

    def __init__(self, outcome: BatchOutcome) -> None:
        self.outcome = outcome


class _Classifier:
    """Turns verdicts into statuses, one id at a time.

    The occurrences of an id in a batch are settled together: against the stored
    row when there is one (same hash: DUPLICATE, else REJECTED), otherwise the
    first occurrence is the one to store, later identical ones are duplicates of
    it and later different ones are rejected.
    """

    def __init__(self, target: _Target, verdicts: list[Row | RecordError]) -> None:
        self.target = target
        self.verdicts = verdicts
        self.statuses: list[RecordStatus | None] = [None] * len(verdicts)
        self.errors: dict[int, RecordError] = {}
        self.first: dict[str, int] = {}  # id -> index of its first valid occurrence
        self.later: dict[str, list[int]] = {}  # id -> later occurrences (rare)
        for index, verdict in enumerate(verdicts):
            if isinstance(verdict, RecordError):
                self.errors[index] = verdict
                self.statuses[index] = RecordStatus.REJECTED
                continue
            key = verdict[target.key_column]
            if key in self.first:
                self.later.setdefault(key, []).append(index)
            else:
                self.first[key] = index

    def row(self, index: int) -> Row:
        return cast(Row, self.verdicts[index])

    def hash(self, index: int) -> str:
        return cast(str, self.row(index)["content_hash"])

    def occurrences(self, key: str) -> list[int]:
        return [self.first[key], *self.later.get(key, ())]

    @property
    def has_rejections(self) -> bool:
        return bool(self.errors)

    @property
    def clean(self) -> bool:
        """No record rejected and no id carrying two contents: the optimistic path applies."""
        return not self.errors and all(
            self.hash(index) == self.hash(self.first[key])
            for key, later in self.later.items()
            for index in later
        )

    def rows(self, keys: Iterable[str]) -> list[Row]:
        """The rows to insert: the first occurrence of each id."""
        return [self.row(self.first[key]) for key in keys]

    def _conflict(self, index: int, message: str) -> None:
        self.statuses[index] = RecordStatus.REJECTED
        self.errors[index] = RecordError(
            index,
            self.row(index)[self.target.key_column],
            SchemaMismatch.code,
            message,
            self.target.key_field,
        )

    def settle(self, key: str, stored_hash: str | None) -> bool:
        """Settle every occurrence of ``key``; True when its first occurrence is to be stored."""
        group = self.occurrences(key)
        for index in group:
            self.errors.pop(index, None)
            self.statuses[index] = None
        name = self.target.key_field
        if stored_hash is not None:
            for index in group:
                if self.hash(index) == stored_hash:
                    self.statuses[index] = RecordStatus.DUPLICATE
                else:
                    self._conflict(index, CONFLICT_STORED.format(name=name))
            return False
        first = self.hash(group[0])
        for index in group[1:]:
            if self.hash(index) != first:
                self._conflict(index, CONFLICT_IN_BATCH.format(name=name, first=group[0]))
        return True

    def outcome(self, written: Iterable[str], *, stored: bool) -> BatchOutcome:
        """Final statuses: the ids in ``written`` are ACCEPTED when the transaction commits
        (later identical occurrences DUPLICATE), SKIPPED when it does not."""
        for key in written:
            self.statuses[self.first[key]] = RecordStatus.ACCEPTED if stored else RecordStatus.SKIPPED
            for index in self.later.get(key, ()):
                if self.statuses[index] is None:
                    self.statuses[index] = RecordStatus.DUPLICATE if stored else RecordStatus.SKIPPED
        statuses = [status or RecordStatus.SKIPPED for status in self.statuses]
        return BatchOutcome(statuses, [self.errors[index] for index in sorted(self.errors)])


async def _stored_hashes(session: AsyncSession, target: _Target, keys: Sequence[str]) -> dict[str, str]:
    table, column = target.table, target.table.c[target.key_column]
    stored: dict[str, str] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        result = await session.execute(sa.select(column, table.c.content_hash).where(column.in_(chunk)))
        stored.update((key, digest) for key, digest in result.tuples())
    return stored


async def _insert_optimistic(session: AsyncSession, target: _Target, rows: list[dict[str, Any]]) -> None:
    """Plain executemany: the fast path when every id is new."""
    try:
        result = cast(CursorResult[Any], await session.execute(sa.insert(target.table), rows))
    except IntegrityError as exc:  # PostgreSQL: an id is already stored
        raise _Collision from exc
    if session.get_bind().dialect.name == "sqlite" and result.rowcount != len(rows):
        raise _Collision  # SQLite's append-only trigger skipped a colliding row


async def _insert_new(session: AsyncSession, target: _Target, rows: list[dict[str, Any]]) -> set[str]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the ids this call stored."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = target.table.c[target.key_column]
    statement = insert(target.table).on_conflict_do_nothing(index_elements=[key]).returning(key)
    result = await session.execute(statement, rows)
    return set(result.scalars().all())


async def _store_exact(session: AsyncSession, plan: _Classifier, partial: bool) -> BatchOutcome:
    """Classify against stored rows, then insert what is new; an id a concurrent sender
    stored in between is skipped by ON CONFLICT DO NOTHING and re-checked like any stored row."""
    target = plan.target
    stored = await _stored_hashes(session, target, list(plan.first))
    new = [key for key in plan.first if plan.settle(key, stored.get(key))]
    if not new or (plan.has_rejections and not partial):
        return plan.outcome(new, stored=False)
    inserted = await _insert_new(session, target, plan.rows(new))
    written = [key for key in new if key in inserted]
    raced = [key for key in new if key not in inserted]
    if raced:
        stored = await _stored_hashes(session, target, raced)
        for key in raced:
            plan.settle(key, stored.get(key))
        if plan.has_rejections and not partial:
            raise _Abandon(plan.outcome(written, stored=False))
    return plan.outcome(written, stored=True)


async def store_batch(
    session: AsyncSession, kind: LogKind, verdicts: list[Row | RecordError], partial: bool
) -> BatchOutcome:
    """Write the valid records in one transaction: all of them, or with ``partial`` the valid ones.
    The optimistic INSERT is its own transaction; after a collision the exact path runs in a new one."""
    plan = _Classifier(_TARGETS[kind], verdicts)
    if plan.clean:
        try:
            async with session.begin():
                await _insert_optimistic(session, plan.target, plan.rows(plan.first))
        except _Collision:
            pass
        else:
            return plan.outcome(plan.first, stored=True)
    try:
        async with session.begin():
            return await _store_exact(session, plan, partial)
    except _Abandon as abandoned:
        return abandoned.outcome


async def log_batch(
    db: Database,
    principal: Principal,
    kind: LogKind,
    *,
    records: list[Any] | None,
    records_json: object,
    partial: bool,
    settings: Settings,
) -> BatchOutcome:
    """Validate and store one logEvents / logInteractions / logSessions call.

    A malformed call (both or neither argument forms, not a list, too many
    records) is refused as a whole; record problems are answered per index.
    """
    batch = the_batch(records, records_json, settings.max_batch_records)
    verdicts = validate_batch(kind, batch, principal, settings.event_types, datetime.now(UTC))
    async with db.session() as session:
        await _check_bounds(session, principal, kind, verdicts)
        return await store_batch(session, kind, verdicts, partial)


async def _check_bounds(
    session: AsyncSession, principal: Principal, kind: LogKind, verdicts: list[Row | RecordError]
) -> None:
    """A bounded sender's valid records must also agree with the directory (users and units
    inside its bound): a record that does not is rejected with E_OUT_OF_SCOPE, in place."""
    if bound_depth(principal) is None:
        return
    valid = [(index, row) for index, row in enumerate(verdicts) if not isinstance(row, RecordError)]
    async with session.begin():
        users = [row["user_id"] for _, row in valid]
        placements = await session.run_sync(directory.locate, principal, users)
    key_column = _TARGETS[kind].key_column
    for index, row in valid:
        try:
            placements.check(row["user_id"], Scope(*(row[f"{level}_id"] for level in LEVELS)))
        except OutOfScope as error:
            verdicts[index] = RecordError(index, row[key_column], error.code, error.message, "scope")


__all__ = ["BatchOutcome", "RecordStatus", "log_batch", "store_batch"]
