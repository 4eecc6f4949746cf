"""The tamper-evident audit log (ops §7, §9).

Every change made through the API calls :meth:`AuditLog.append` inside the change's own
transaction, so the change and its entry commit or roll back together.

Chain. Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s ``entry_hash``; for entry 1 the
fixed :data:`GENESIS_HASH`) and ``entry_hash = HMAC-SHA256(audit_secret, canonical)``
where ``canonical`` is the JSON object of all the entry's fields
``{seq, at, actorSub, actorRole, action, target, before, after, requestId, userId,
prevHash}`` with sorted keys, no whitespace, UTF-8 (non-ASCII kept), and ``at`` as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Whoever lacks the secret (database access is not
enough) cannot make an edited, inserted or reordered entry verify again.

Serialised appends. Every append first moves the one-row ``audit_head`` forward
(``UPDATE ... SET seq = seq + 1 ... RETURNING``). That statement takes PostgreSQL's
row lock and SQLite's database write lock before the head is read, so two writers
never read the same head; ``seq``, ``prev_hash`` and ``entry_hash`` are also UNIQUE, so a
fork could not be stored even if they did. A rolled-back change rolls its head move
back too: seq stays gapless.

Truncated tail. Deleting the newest entries leaves a valid shorter chain. The head
row keeps the last (seq, hash) with its own HMAC, so verify notices unless the
attacker also restores an older head row they copied earlier. The complete defence
is an external anchor: store ``lastSeq``/``lastHash`` of ``auditVerify`` outside the
database and pass them back as ``anchorSeq``/``anchorHash`` later.

Actions. Snake-case ``verb_object`` names of the mutation that made the change; each
belongs to one of the specification's categories (predict, publish, reload,
update_config), and the category names are actions too. ``auditLog(action:)`` takes a
category (all its actions) or one action. See :data:`CATEGORY_OF`.

userId of an entry: the user the change is about (registerUser, updateSkill), else
the acting principal's ``sub``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, and_, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from app.auth import Principal
from app.errors import Forbidden, SchemaMismatch
from app.pagination import Page, decode_cursor, encode_cursor
from app.times import as_utc
from app.validation import check_instant, check_page_size
from persistence.models import AuditEntryRow, AuditHeadRow
from persistence.models.audit import HEAD_ID

GENESIS_HASH = "0" * 64
CURSOR_KIND = "audit"
VERIFY_BATCH = 500
REQUEST_ID_MAX = 128
TEXT_MAX = 256


class AuditAction(StrEnum):
    # The specification's categories (§7.1), usable as actions themselves.
    PREDICT = "predict"
    PUBLISH = "publish"
    RELOAD = "reload"
    UPDATE_CONFIG = "update_config"
    # Finer actions, named after the mutation that makes the change.
    REGISTER_USER = "register_user"
    UPDATE_SKILL = "update_skill"
    UPDATE_MODEL_CONFIG = "update_model_config"
    SET_FEATURE_TOGGLE = "set_feature_toggle"
    UPDATE_LIMITS = "update_limits"
    UPLOAD_RULESET = "upload_ruleset"
    HOT_RELOAD = "hot_reload"
    CREATE_RELEASE = "create_release"
    ROLLBACK_RELEASE = "rollback_release"
    REBUILD_SNAPSHOTS = "rebuild_snapshots"


A = AuditAction
CATEGORIES = (A.PREDICT, A.PUBLISH, A.RELOAD, A.UPDATE_CONFIG)
CATEGORY_OF: dict[AuditAction, AuditAction] = {
    **{category: category for category in CATEGORIES},
    A.REGISTER_USER: A.UPDATE_CONFIG,
    A.UPDATE_SKILL: A.UPDATE_CONFIG,
    A.UPDATE_MODEL_CONFIG: A.UPDATE_CONFIG,
    A.SET_FEATURE_TOGGLE: A.UPDATE_CONFIG,
    A.UPDATE_LIMITS: A.UPDATE_CONFIG,
    A.UPLOAD_RULESET: A.UPDATE_CONFIG,
    A.HOT_RELOAD: A.RELOAD,
    A.CREATE_RELEASE: A.PUBLISH,
    A.ROLLBACK_RELEASE: A.PUBLISH,
    A.REBUILD_SNAPSHOTS: A.PUBLISH,
}


def category_of(action: str) -> str:
    return CATEGORY_OF[AuditAction(action)].value


# --- canonical form and keys ------------------------------------------------------------------


def iso_utc(value: datetime) -> str:
    """One spelling per instant, for the hash."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_json(value: Any) -> Any:
    """Plain JSON values, so what is hashed is exactly what the database hands back."""
    if isinstance(value, Enum):
        return to_json(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("audit values must be finite numbers")
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return to_json(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    raise TypeError(f"cannot record a {type(value).__name__} in the audit log")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _mac(secret: str, payload: Any) -> str:
    return hmac.new(secret.encode("utf-8"), canonical_json(payload), hashlib.sha256).hexdigest()


def hashed_fields(row: AuditEntryRow) -> dict[str, Any]:
    """Everything an entry says, as the canonical JSON object its hash covers."""
    return {
        "seq": row.seq,
        "at": iso_utc(row.at),
        "actorSub": row.actor_sub,
        "actorRole": row.actor_role,
        "action": row.action,
        "target": row.target,
        "before": row.before,
        "after": row.after,
        "requestId": row.request_id,
        "userId": row.user_id,
        "prevHash": row.prev_hash,
    }


def entry_hash(secret: str, row: AuditEntryRow) -> str:
    return _mac(secret, hashed_fields(row))


def head_mac(secret: str, seq: int, last_hash: str) -> str:
    """The head's own key: a truncated chain cannot be given a matching head without it."""
    return _mac(secret, {"kind": "audit_head", "seq": seq, "entryHash": last_hash})


def _ensure_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden(f"role {principal.role.value} may not read the audit log")


# --- append -----------------------------------------------------------------------------------


_ENTRIES = AuditEntryRow.__table__  # type: ignore[attr-defined]
_ENTRY_COLUMNS = [column.name for column in _ENTRIES.columns]
_HEAD = AuditHeadRow.__table__  # type: ignore[attr-defined]
# Moves the head first: the lock every append takes before it reads the head.
_ADVANCE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(seq=_HEAD.c.seq + 1)
    .returning(_HEAD.c.seq, _HEAD.c.entry_hash)
)
_LOCK_HEAD = select(_HEAD.c.seq).where(_HEAD.c.id == HEAD_ID).with_for_update()


@dataclass(frozen=True, slots=True)
class AuditLog:
    """The append rule with its key, built once per app (``OpsRuntime.audit``) and passed
    to whatever records a change: the key never travels in a session.

    ``append`` is synchronous Core on the caller's connection, so the one rule serves the
    async services (``await session.run_sync(audit.append, ...)``) and the group-commit
    writer's units (``audit.append(conn, ...)``) alike.
    """

    secret: str = field(repr=False)

    def lock(self, conn: Connection | Session) -> None:
        """Take the lock that ``append`` takes, now: for a transaction that locks other rows
        before it appends (a user it adds), so that every such transaction takes the audit
        head first and two of them on different workers cannot deadlock."""
        conn.execute(_LOCK_HEAD)

    def append(
        self,
        conn: Connection | Session,
        principal: Principal,
        *,
        action: str,
        target: str,
        before: Any,
        after: Any,
        request_id: str,
        user_id: str | None = None,
    ) -> None:
        """Append one entry in the caller's open transaction; the change and its entry
        commit or roll back together.

        An unknown action or a value JSON cannot hold is a programming error: it raises,
        and the caller's change rolls back with it (no change without its entry).
        """
        known = AuditAction(action)
        if not 0 < len(target) <= TEXT_MAX or len(user_id or "") > TEXT_MAX:
            raise ValueError(f"an audit target (and userId) is 1-{TEXT_MAX} characters")
        before_json, after_json = to_json(before), to_json(after)
        head = conn.execute(_ADVANCE_HEAD).one_or_none()
        if head is None:
            raise RuntimeError("audit_head is missing: run the migrations")
        seq, prev_hash = int(head.seq), str(head.entry_hash)
        row = AuditEntryRow(
            seq=seq,
            at=datetime.now(UTC),  # taken under the lock: timestamps follow seq
            actor_sub=principal.sub,
            actor_role=principal.role.value,
            action=known.value,
            target=target,
            before=before_json,
            after=after_json,
            request_id=request_id[:REQUEST_ID_MAX],
            user_id=user_id or principal.sub,
            prev_hash=prev_hash,
            entry_hash="",
        )
        row.entry_hash = entry_hash(self.secret, row)
        conn.execute(insert(_ENTRIES).values({name: getattr(row, name) for name in _ENTRY_COLUMNS}))
        conn.execute(
            update(_HEAD)
            .where(_HEAD.c.id == HEAD_ID)
            .values(entry_hash=row.entry_hash, mac=head_mac(self.secret, seq, row.entry_hash))
        )


# --- read -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """§7.1 filters: ``action`` is a category or one action; [from_, to) on ``at``."""

    user_id: str | None = None
    action: str | None = None
    from_: datetime | None = None
    to: datetime | None = None


def _actions_matching(action: str) -> list[str]:
    try:
        wanted = AuditAction(action)
    except ValueError as exc:
        raise SchemaMismatch(
            f"unknown action {action!r}; one of: {', '.join(a.value for a in AuditAction)}",
            field="action",
        ) from exc
    if wanted in CATEGORIES:
        return sorted(a.value for a, category in CATEGORY_OF.items() if category is wanted)
    return [wanted.value]


def _after_seq(after: str) -> int:
    key = decode_cursor(CURSOR_KIND, after)
    if not key.isdigit():
        raise SchemaMismatch("after is not a valid cursor", field="after")
    return int(key)


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    query: AuditFilter,
    first: int,
    after: str | None,
    max_page_size: int,
) -> Page[AuditEntryRow]:
    """Newest first (descending seq); ``after`` continues towards older entries."""
    _ensure_admin(principal)
    check_page_size(first, max_page_size)
    seq = col(AuditEntryRow.seq)
    at = col(AuditEntryRow.at)
    conditions: list[ColumnElement[bool]] = []
    if query.user_id is not None:
        conditions.append(col(AuditEntryRow.user_id) == query.user_id)
    if query.action is not None:
        conditions.append(col(AuditEntryRow.action).in_(_actions_matching(query.action)))
    since = None if query.from_ is None else check_instant("from", query.from_)
    until = None if query.to is None else check_instant("to", query.to)
    if since is not None and until is not None and since >= until:
        raise SchemaMismatch("from must be before to", field="from")
    if since is not None:
        conditions.append(at >= since)
    if until is not None:
        conditions.append(at < until)
    if after is not None:
        conditions.append(seq < _after_seq(after))
    statement = select(AuditEntryRow).where(and_(true(), *conditions)).order_by(seq.desc()).limit(first + 1)
    rows = list((await session.scalars(statement)).all())
    has_next = len(rows) > first
    rows = rows[:first]
    return Page(rows, [encode_cursor(CURSOR_KIND, str(row.seq)) for row in rows], has_next)


# --- verify -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int  # entries verified intact (all of them when ok)
    first_broken_seq: int | None
    reason: str | None
    last_seq: int  # the anchor to keep outside the database
    last_hash: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """A (seq, hash) saved earlier from a verification, outside the database."""

    seq: int
    entry_hash: str


async def _snapshot(session: AsyncSession) -> None:
    """Read the head and every entry from one snapshot, so appends racing the check
    are neither half-seen nor reported as tampering."""
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    dialect = session.get_bind().dialect.name
    connection = await session.connection(execution_options=options if dialect == "postgresql" else None)
    if dialect == "sqlite":
        # pysqlite runs SELECTs outside a transaction; BEGIN pins one WAL snapshot.
        await connection.exec_driver_sql("BEGIN")


async def _entries(session: AsyncSession) -> AsyncIterator[AuditEntryRow]:
    """All entries in seq order, a batch at a time (the log may be large)."""
    seq = col(AuditEntryRow.seq)
    last: int | None = None
    while True:
        statement = select(AuditEntryRow).order_by(seq).limit(VERIFY_BATCH)
        if last is not None:
            statement = statement.where(seq > last)
        batch = list((await session.scalars(statement)).all())
        for row in batch:
            yield row
        if len(batch) < VERIFY_BATCH:
            return
        last = batch[-1].seq
        session.expunge_all()


def _broken(seq: int, reason: str, prev_hash: str) -> Verification:
    """Entries 1..seq-1 verified; ``prev_hash`` is entry seq-1's hash (genesis for seq 1)."""
    return Verification(False, seq - 1, seq, reason, seq - 1, prev_hash)


def _anchor(seq: int | None, entry_hash: str | None) -> Anchor | None:
    if seq is None and entry_hash is None:
        return None
    if seq is None or entry_hash is None or seq < 1 or len(entry_hash) != len(GENESIS_HASH):
        raise SchemaMismatch("an anchor is both a seq >= 1 and its 64-character hash", field="anchorSeq")
    return Anchor(seq, entry_hash.lower())


async def verify(
    session: AsyncSession,
    principal: Principal,
    log: AuditLog,
    anchor_seq: int | None = None,
    anchor_hash: str | None = None,
) -> Verification:
    """Recompute the whole chain and report the first entry that does not hold.

    Checks, in seq order: no missing seq, each entry's HMAC, each entry's link to the
    previous one, no entry beyond the head, the head's HMAC and last hash, and the
    optional external anchor. Run it in a fresh session: it opens its own snapshot.
    """
    _ensure_admin(principal)
    anchor = _anchor(anchor_seq, anchor_hash)
    secret = log.secret
    await _snapshot(session)
    head = await session.scalar(select(AuditHeadRow).where(col(AuditHeadRow.id) == HEAD_ID))
    head_seq = head.seq if head is not None else 0
    checked, prev = 0, GENESIS_HASH
    before_anchor: str | None = None  # entry anchor.seq-1's hash, once the anchor's entry is seen
    anchored: str | None = None
    async for row in _entries(session):
        expected = checked + 1
        if row.seq != expected:
            return _broken(expected, f"entry {expected} is missing (the next stored is {row.seq})", prev)
        if row.seq > head_seq:
            reason = f"entry {row.seq} lies beyond the chain head ({head_seq}): not appended by the server"
            return _broken(row.seq, reason, prev)
        if not hmac.compare_digest(row.entry_hash, entry_hash(secret, row)):
            reason = f"entry {row.seq} does not match its hash: edited, or hashed without the server key"
            return _broken(row.seq, reason, prev)
        if row.prev_hash != prev:
            reason = f"entry {row.seq} does not link to entry {row.seq - 1}: reordered or spliced"
            return _broken(row.seq, reason, prev)
        if anchor is not None and row.seq == anchor.seq:
            before_anchor, anchored = prev, row.entry_hash
        checked, prev = row.seq, row.entry_hash
    if head is None:
        return _broken(checked + 1, "the chain head row is missing", prev)
    if head_seq > checked:
        reason = f"entries {checked + 1}..{head_seq} are missing from the end (the head says {head_seq})"
        return _broken(checked + 1, reason, prev)
    if head_seq > 0 and (
        head.entry_hash != prev or not hmac.compare_digest(head.mac, head_mac(secret, head_seq, prev))
    ):
        reason = f"the chain head does not match the last entry: entries after {checked} may be gone"
        return _broken(checked + 1, reason, prev)
    if anchor is not None and (anchored is None or before_anchor is None):
        reason = f"the anchor's entry {anchor.seq} is not in the chain: entries removed from the end"
        return _broken(checked + 1, reason, prev)
    if anchor is not None and before_anchor is not None and anchored != anchor.entry_hash:
        return _broken(anchor.seq, f"entry {anchor.seq} differs from the anchor", before_anchor)
    return Verification(True, checked, None, None, checked, prev)


__all__ = [
    "CATEGORY_OF",
    "GENESIS_HASH",
    "AuditAction",
    "AuditFilter",
    "AuditLog",
    "Verification",
    "category_of",
    "entry_hash",
    "list_entries",
    "verify",
]
