"""Ingestion of the raw logs (data-layer §3.1-3.3, §6, §7, AG-DATA-04).

Both GraphQL argument forms (typed inputs and the ``recordsJson`` list) reach
this module as plain camelCase dicts, so ONE validator decides every record and
the two forms cannot drift apart. The validator is hand-written rather than a
pydantic model because it runs on every record of batches of thousands and
must map each problem to the contract's code (scope, version, schema, scope
bound), in that order.

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

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from app.auth import Principal
from app.errors import DomainError, OutOfScope, SchemaMismatch, ScopeMissing, VersionMissing
from app.scope import LEVELS, Scope, bound_depth, ensure_can_write
from app.services import directory
from app.settings import Settings
from app.validation import check_id, is_id
from persistence.models import EventLogRow, InteractionLogRow, SessionLogRow

# Column sizes of migration 0002 and sanity bounds of the spec's "number" fields.
LOG_ID_MAX = 64
VERSION_MAX = 64
ACTION_MAX = 256
TEXT_MAX = 65_536
TRAITS_MAX = 64
TRAIT_MAX = 128
INT_MAX = 2**31 - 1
TIMESTAMP_MAX = 64

SCOPE_FIELDS = ("regionId", "countryId", "branchId", "teamId")
VERSION_FIELDS = ("moduleVersion", "scenarioVersion", "promptVersion")
SCOPE_KEYS = frozenset(SCOPE_FIELDS)
VERSION_KEYS = frozenset(VERSION_FIELDS)
_ABSENT: Any = object()  # a version key that is not there (null is a value)
INTERACTION_ENGINES = frozenset({"saleslab", "module", "quiz"})
SESSION_ENGINES = frozenset({"saleslab", "learning", "quiz"})
OUTCOMES = frozenset({"success", "fail", "partial"})

# The reward convention the snapshot builder relies on: a reward_claim event's
# context.action is "xp:<non-negative integer>" or "badge:<badge id>".
REWARD_EVENT = "reward_claim"
_REWARD_XP = re.compile(r"xp:[0-9]{1,9}")

EVENT_FIELDS = frozenset({"eventId", "timestamp", "userId", "eventType", "context", "version", "scope"})
CONTEXT_FIELDS = frozenset({"moduleId", "quizId", "scenarioId", "turnIndex", "action"})
INTERACTION_FIELDS = frozenset(
    {
        "interactionId",
        "sessionId",
        "timestamp",
        "userId",
        "engine",
        "input",
        "output",
        "metadata",
        "version",
        "scope",
    }
)
METADATA_FIELDS = frozenset({"difficultyLevel", "personaId", "traitActivation", "upsellTriggered"})
SESSION_FIELDS = frozenset(
    {
        "sessionId",
        "userId",
        "engine",
        "startTime",
        "endTime",
        "durationSec",
        "outcome",
        "summary",
        "version",
        "scope",
    }
)
SUMMARY_FIELDS = frozenset({"turnCount", "correctAnswers", "upsellAttempts", "upsellSuccess"})

CONFLICT_STORED = "{name} already stored with different content; corrections are new records with new ids"
CONFLICT_IN_BATCH = "{name} appears earlier in this batch (index {first}) with different content"


class LogKind(StrEnum):
    EVENT = "event"
    INTERACTION = "interaction"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class _Target:
    table: sa.Table
    key_column: str
    key_field: str


_TARGETS = {
    LogKind.EVENT: _Target(SQLModel.metadata.tables[EventLogRow.__tablename__], "event_id", "eventId"),
    LogKind.INTERACTION: _Target(
        SQLModel.metadata.tables[InteractionLogRow.__tablename__], "interaction_id", "interactionId"
    ),
    LogKind.SESSION: _Target(
        SQLModel.metadata.tables[SessionLogRow.__tablename__], "session_id", "sessionId"
    ),
}


class RecordStatus(StrEnum):
    ACCEPTED = "ACCEPTED"  # stored by this call
    DUPLICATE = "DUPLICATE"  # already stored with the same content: a no-op
    REJECTED = "REJECTED"  # invalid, out of scope, or its id holds other content
    SKIPPED = "SKIPPED"  # valid, but not stored: another record failed an all-or-nothing batch


@dataclass(frozen=True, slots=True)
class RecordError:
    index: int
    id: str | None
    code: str
    message: str
    field: str | None


@dataclass(slots=True)
class BatchOutcome:
    """Per input index: a status; for each REJECTED record, its error (in index order)."""

    statuses: list[RecordStatus]
    errors: list[RecordError]

    def count(self, status: RecordStatus) -> int:
        return self.statuses.count(status)


Row = dict[str, Any]
"""A validated record as the columns of its table, ``content_hash`` included.

Rows hold only strings, numbers and datetimes, so the garbage collector does
not track them: a batch of thousands adds no work to its collections."""


@dataclass(frozen=True, slots=True)
class ValidRecord:
    """One validated record, for callers that check records one at a time."""

    key: str
    content_hash: str
    row: Row


# --- validation -------------------------------------------------------------------------------


def _missing(name: str) -> SchemaMismatch:
    return SchemaMismatch(f"{name} is required", field=name)


def _unknown(record: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    if not allowed.issuperset(record):
        name = prefix + sorted(set(record) - allowed)[0]
        raise SchemaMismatch(f"unknown field {name} (data-layer schemas are fixed)", field=name)


def _object(value: object, name: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise SchemaMismatch(f"{name} must be an object", field=name)
    return value


def _log_id(value: object, name: str) -> str:
    if value is None:
        raise _missing(name)
    check_id(name, cast(str, value))
    if len(cast(str, value)) > LOG_ID_MAX:
        raise SchemaMismatch(f"{name} must be at most {LOG_ID_MAX} characters", field=name)
    return cast(str, value)


def _instant(value: object, name: str) -> datetime:
    """ISO 8601 with a UTC offset ('Z' or '+09:00'); stored in UTC."""
    if value is None:
        raise _missing(name)
    if type(value) is not str or len(value) > TIMESTAMP_MAX:
        raise SchemaMismatch(f"{name} must be an ISO 8601 timestamp string", field=name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SchemaMismatch(f"{name} is not an ISO 8601 timestamp: {value!r}", field=name) from None
    if parsed.tzinfo is None:
        raise SchemaMismatch(f"{name} needs a timezone offset such as Z or +09:00", field=name)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise SchemaMismatch(f"{name} is out of range", field=name) from None


def _count(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= INT_MAX:
        raise SchemaMismatch(f"{name} must be a non-negative integer", field=name)
    return value


def _opt_count(value: object, name: str) -> int | None:
    return None if value is None else _count(value, name)


def _number(value: object, name: str, *, minimum: float | None = None) -> float:
    if type(value) is not float and type(value) is not int:
        raise SchemaMismatch(f"{name} must be a number", field=name)
    number = float(value)
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        bound = "a finite number" if minimum is None else f"a finite number >= {minimum:g}"
        raise SchemaMismatch(f"{name} must be {bound}", field=name)
    return number


def _bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise SchemaMismatch(f"{name} must be true or false", field=name)
    return value


def _opt_bool(value: object, name: str) -> bool | None:
    return None if value is None else _bool(value, name)


def _text(value: object, name: str, max_length: int) -> str:
    if type(value) is not str or len(value) > max_length or "\x00" in value:
        raise SchemaMismatch(
            f"{name} must be a string of at most {max_length} characters, without NUL", field=name
        )
    return value


def _opt_text(value: object, name: str, max_length: int) -> str | None:
    return None if value is None else _text(value, name, max_length)


def _choice(value: object, name: str, allowed: frozenset[str]) -> str:
    if value is None:
        raise _missing(name)
    if type(value) is not str or value not in allowed:
        raise SchemaMismatch(f"{name} must be one of {', '.join(sorted(allowed))}", field=name)
    return value


def _reward_action(action: str | None) -> None:
    if action is not None:
        if _REWARD_XP.fullmatch(action):
            return
        kind, sep, badge = action.partition(":")
        if kind == "badge" and sep and is_id(badge):
            return
    raise SchemaMismatch(
        "a reward_claim event needs context.action 'xp:<non-negative integer>' or 'badge:<badge id>'",
        field="context.action",
    )


@dataclass(frozen=True, slots=True)
class _Tail:
    """What every record with one scope and version shares: the canonical JSON parts and the
    row's columns. Built once per process (``_tail``), not per record."""

    version: dict[str, str | None]
    scope: dict[str, str]
    columns: dict[str, Any]

    @classmethod
    def build(
        cls, scope: tuple[str, str, str, str], version: tuple[str | None, str | None, str | None]
    ) -> _Tail:
        region, country, branch, team = scope
        module_v, scenario_v, prompt_v = version
        return cls(
            version=dict(zip(VERSION_FIELDS, version, strict=True)),
            scope=dict(zip(SCOPE_FIELDS, scope, strict=True)),
            columns={
                "module_version": module_v,
                "scenario_version": scenario_v,
                "prompt_version": prompt_v,
                "region_id": region,
                "country_id": country,
                "branch_id": branch,
                "team_id": team,
            },
        )


class _Passed:
    """Values that passed a check whose answer depends on nothing else, shared by every
    validator of the process: batches and successive logs repeat a handful of scopes,
    versions and ids thousands of times. Bounded: forgets everything when full."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[Any] = set()

    def __contains__(self, value: object) -> bool:
        return value in self._seen

    def add(self, value: object) -> None:
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(value)


_CHECKED_IDS = _Passed(100_000)
_CHECKED_VERSIONS = _Passed(10_000)
_CHECKED_SCOPES = _Passed(10_000)  # (sender's bound, scope): allowed for that bound
_tail = lru_cache(maxsize=10_000)(_Tail.build)


class RecordValidator:
    """Validates the records of one batch (or one UPM log), skipping the checks of scopes,
    versions and ids that passed before (``_Passed``).

    ``event`` / ``interaction`` / ``session`` return the row to store or raise the
    DomainError that names the record's problem.
    """

    def __init__(self, principal: Principal, event_types: Iterable[str], now: datetime) -> None:
        self.principal = principal
        self.event_types = frozenset(event_types)
        self.stamps = {"received_at": now, "sent_by": principal.sub}
        # Whether a scope may be written depends on the sender's bound, which these four fix.
        self._bound = (principal.role, principal.region_id, principal.country_id, principal.branch_id)

    def id(self, value: object, name: str) -> str:
        """check_id, skipped for ids that passed before: users and modules repeat across logs."""
        if type(value) is str and value in _CHECKED_IDS:
            return value
        if value is None:
            raise _missing(name)
        _CHECKED_IDS.add(check_id(name, cast(str, value)))
        return cast(str, value)

    def opt_id(self, value: object, name: str) -> str | None:
        return None if value is None else self.id(value, name)

    def scope(self, record: dict[str, Any]) -> tuple[str, str, str, str]:
        scope = record.get("scope")
        # Fast path: exactly four keys whose values passed for this bound before (a missing key
        # reads as None, which never passes).
        if type(scope) is dict and len(scope) == 4:
            key = (scope.get("regionId"), scope.get("countryId"), scope.get("branchId"), scope.get("teamId"))
            try:
                if (self._bound, key) in _CHECKED_SCOPES:
                    return cast(tuple[str, str, str, str], key)
            except TypeError:  # an unhashable id: the full check below names it
                pass
        return self._new_scope(scope)

    def _new_scope(self, scope: object) -> tuple[str, str, str, str]:
        if scope is None:
            raise ScopeMissing(
                "scope is missing: every log needs regionId, countryId, branchId and teamId", field="scope"
            )
        scope = _object(scope, "scope")
        key = tuple(scope.get(name) for name in SCOPE_FIELDS)
        if None in key:
            name = f"scope.{SCOPE_FIELDS[key.index(None)]}"
            raise ScopeMissing(f"{name} is missing", field=name)
        _unknown(scope, SCOPE_KEYS, "scope.")
        for name, value in zip(SCOPE_FIELDS, key, strict=True):
            check_id(f"scope.{name}", cast(str, value))
        checked = cast(tuple[str, str, str, str], key)
        ensure_can_write(self.principal, Scope(*checked))
        _CHECKED_SCOPES.add((self._bound, checked))
        return checked

    def version(self, record: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        version = record.get("version")
        if type(version) is dict and len(version) == 3:
            key = (
                version.get("moduleVersion", _ABSENT),
                version.get("scenarioVersion", _ABSENT),
                version.get("promptVersion", _ABSENT),
            )
            try:
                if key in _CHECKED_VERSIONS:
                    return key
            except TypeError:
                pass
        return self._new_version(version)

    def _new_version(self, version: object) -> tuple[str | None, str | None, str | None]:
        if version is None:
            raise VersionMissing(
                "version is missing: moduleVersion, scenarioVersion and promptVersion must be present "
                "(null where there is none)",
                field="version",
            )
        version = _object(version, "version")
        for name in VERSION_FIELDS:
            if name not in version:
                raise VersionMissing(
                    f"version.{name} is missing (send null where there is none)", field=f"version.{name}"
                )
        _unknown(version, VERSION_KEYS, "version.")
        key = (version["moduleVersion"], version["scenarioVersion"], version["promptVersion"])
        for name, value in zip(VERSION_FIELDS, key, strict=True):
            if value is not None and (
                type(value) is not str or not value.strip() or len(value) > VERSION_MAX or "\x00" in value
            ):
                raise SchemaMismatch(
                    f"version.{name} must be null or a version string of 1-{VERSION_MAX} characters",
                    field=f"version.{name}",
                )
        _CHECKED_VERSIONS.add(key)
        return key

    def _head(self, record: object, allowed: frozenset[str]) -> tuple[dict[str, Any], _Tail]:
        """The checks every log shares, in the order that decides the code: scope, the
        sender's bound, version, then unknown fields."""
        if type(record) is not dict:
            raise SchemaMismatch("each record must be an object")
        scope = self.scope(record)
        version = self.version(record)
        _unknown(record, allowed, "")
        return record, _tail(scope, version)

    def _finish(self, canonical: dict[str, Any], row: Row, tail: _Tail) -> Row:
        canonical["version"] = tail.version
        canonical["scope"] = tail.scope
        try:
            encoded = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate: not storable Unicode text
            raise SchemaMismatch("text fields must be valid Unicode (no lone surrogates)") from None
        digest = hashlib.sha256(encoded).hexdigest()
        row.update(tail.columns)
        row.update(self.stamps)
        row["content_hash"] = digest
        return row

    def event(self, raw: object) -> ValidRecord:
        return ValidRecord(*_keyed(self.event_row(raw), "event_id"))

    def interaction(self, raw: object) -> ValidRecord:
        return ValidRecord(*_keyed(self.interaction_row(raw), "interaction_id"))

    def session(self, raw: object) -> ValidRecord:
        return ValidRecord(*_keyed(self.session_row(raw), "session_id"))

    def event_row(self, raw: object) -> Row:
        record, tail = self._head(raw, EVENT_FIELDS)
        event_id = _log_id(record.get("eventId"), "eventId")
        ts = _instant(record.get("timestamp"), "timestamp")
        user_id = self.id(record.get("userId"), "userId")
        event_type = record.get("eventType")
        if event_type is None:
            raise _missing("eventType")
        if type(event_type) is not str or event_type not in self.event_types:
            raise SchemaMismatch(
                f"eventType {str(event_type)[:64]!r} is not in the allowed list: "
                f"{', '.join(sorted(self.event_types))}",
                field="eventType",
            )
        context = record.get("context")
        module_id: str | None = None
        quiz_id: str | None = None
        scenario_id: str | None = None
        turn_index: int | None = None
        action: str | None = None
        if context is not None:
            context = _object(context, "context")
            _unknown(context, CONTEXT_FIELDS, "context.")
            module_id = self.opt_id(context.get("moduleId"), "context.moduleId")
            quiz_id = self.opt_id(context.get("quizId"), "context.quizId")
            scenario_id = self.opt_id(context.get("scenarioId"), "context.scenarioId")
            turn_index = _opt_count(context.get("turnIndex"), "context.turnIndex")
            action = _opt_text(context.get("action"), "context.action", ACTION_MAX)
        if event_type == REWARD_EVENT:
            _reward_action(action)
        canonical = {
            "eventId": event_id,
            "timestamp": ts,
            "userId": user_id,
            "eventType": event_type,
            "context": {
                "moduleId": module_id,
                "quizId": quiz_id,
                "scenarioId": scenario_id,
                "turnIndex": turn_index,
                "action": action,
            },
        }
        row = {
            "event_id": event_id,
            "ts": ts,
            "day": ts.date(),
            "user_id": user_id,
            "event_type": event_type,
            "module_id": module_id,
            "quiz_id": quiz_id,
            "scenario_id": scenario_id,
            "turn_index": turn_index,
            "action": action,
        }
        return self._finish(canonical, row, tail)

    def interaction_row(self, raw: object) -> Row:
        record, tail = self._head(raw, INTERACTION_FIELDS)
        interaction_id = _log_id(record.get("interactionId"), "interactionId")
        session_id = _log_id(record.get("sessionId"), "sessionId")
        ts = _instant(record.get("timestamp"), "timestamp")
        user_id = self.id(record.get("userId"), "userId")
        engine = _choice(record.get("engine"), "engine", INTERACTION_ENGINES)
        text_in = record.get("input")
        if text_in is None:
            raise _missing("input")
        text_in = _text(text_in, "input", TEXT_MAX)
        text_out = _opt_text(record.get("output"), "output", TEXT_MAX)
        metadata = record.get("metadata")
        if metadata is None:
            raise _missing("metadata")
        metadata = _object(metadata, "metadata")
        _unknown(metadata, METADATA_FIELDS, "metadata.")
        level = metadata.get("difficultyLevel")
        difficulty = None if level is None else _number(level, "metadata.difficultyLevel")
        persona_id = self.opt_id(metadata.get("personaId"), "metadata.personaId")
        traits = _traits(metadata.get("traitActivation"))
        upsell = metadata.get("upsellTriggered")
        if upsell is None:
            raise _missing("metadata.upsellTriggered")
        upsell = _bool(upsell, "metadata.upsellTriggered")
        canonical = {
            "interactionId": interaction_id,
            "sessionId": session_id,
            "timestamp": ts,
            "userId": user_id,
            "engine": engine,
            "input": text_in,
            "output": text_out,
            "metadata": {
                "difficultyLevel": difficulty,
                "personaId": persona_id,
                "traitActivation": traits,
                "upsellTriggered": upsell,
            },
        }
        row = {
            "interaction_id": interaction_id,
            "session_id": session_id,
            "ts": ts,
            "day": ts.date(),
            "user_id": user_id,
            "engine": engine,
            "input": text_in,
            "output": text_out,
            "difficulty_level": difficulty,
            "persona_id": persona_id,
            "trait_activation": traits,
            "upsell_triggered": upsell,
        }
        return self._finish(canonical, row, tail)

    def session_row(self, raw: object) -> Row:
        record, tail = self._head(raw, SESSION_FIELDS)
        session_id = _log_id(record.get("sessionId"), "sessionId")
        user_id = self.id(record.get("userId"), "userId")
        engine = _choice(record.get("engine"), "engine", SESSION_ENGINES)
        start = _instant(record.get("startTime"), "startTime")
        end = _instant(record.get("endTime"), "endTime")
        if end < start:
            raise SchemaMismatch("endTime is before startTime", field="endTime")
        duration = record.get("durationSec")
        if duration is None:
            raise _missing("durationSec")
        duration = _number(duration, "durationSec", minimum=0)
        outcome = record.get("outcome")
        if outcome is not None:
            outcome = _choice(outcome, "outcome", OUTCOMES)
        summary = record.get("summary")
        if summary is None:
            raise _missing("summary")
        summary = _object(summary, "summary")
        _unknown(summary, SUMMARY_FIELDS, "summary.")
        turns = summary.get("turnCount")
        if turns is None:
            raise _missing("summary.turnCount")
        turns = _count(turns, "summary.turnCount")
        correct = _opt_count(summary.get("correctAnswers"), "summary.correctAnswers")
        attempts = _opt_count(summary.get("upsellAttempts"), "summary.upsellAttempts")
        success = _opt_bool(summary.get("upsellSuccess"), "summary.upsellSuccess")
        canonical = {
            "sessionId": session_id,
            "userId": user_id,
            "engine": engine,
            "startTime": start,
            "endTime": end,
            "durationSec": duration,
            "outcome": outcome,
            "summary": {
                "turnCount": turns,
                "correctAnswers": correct,
                "upsellAttempts": attempts,
                "upsellSuccess": success,
            },
        }
        row = {
            "session_id": session_id,
            "user_id": user_id,
            "engine": engine,
            "start_time": start,
            "end_time": end,
            "day": end.date(),
            "duration_sec": duration,
            "outcome": outcome,
            "turn_count": turns,
            "correct_answers": correct,
            "upsell_attempts": attempts,
            "upsell_success": success,
        }
        return self._finish(canonical, row, tail)


def _keyed(row: Row, key_column: str) -> tuple[str, str, Row]:
    return row[key_column], row["content_hash"], row


def _traits(value: object) -> list[str]:
    name = "metadata.traitActivation"
    if value is None:
        raise _missing(name)
    if type(value) is not list or len(value) > TRAITS_MAX:
        raise SchemaMismatch(f"{name} must be a list of at most {TRAITS_MAX} strings", field=name)
    for trait in value:
        if type(trait) is not str or not trait.strip() or len(trait) > TRAIT_MAX or "\x00" in trait:
            raise SchemaMismatch(f"{name} items must be strings of 1-{TRAIT_MAX} characters", field=name)
    return cast(list[str], value)


def _the_batch(records: list[Any] | None, records_json: object, max_records: int) -> list[Any]:
    """Exactly one argument form, holding 1..max records: else the whole call is refused."""
    if (records is None) == (records_json is None):
        raise SchemaMismatch("give exactly one of records and recordsJson", field="records")
    batch = records if records is not None else records_json
    name = "records" if records is not None else "recordsJson"
    if type(batch) is not list:
        raise SchemaMismatch("recordsJson must be a JSON list of records", field=name)
    if not 1 <= len(batch) <= max_records:
        raise SchemaMismatch(
            f"a batch holds 1 to {max_records} records, not {len(batch)}", field=name, maxRecords=max_records
        )
    return batch


def validate_batch(
    kind: LogKind, records: Sequence[object], principal: Principal, event_types: Iterable[str], now: datetime
) -> list[Row | RecordError]:
    """One verdict per record: the validated row, or why it is rejected."""
    validator = RecordValidator(principal, event_types, now)
    check = {
        LogKind.EVENT: validator.event_row,
        LogKind.INTERACTION: validator.interaction_row,
        LogKind.SESSION: validator.session_row,
    }[kind]
    key_field = _TARGETS[kind].key_field
    verdicts: list[Row | RecordError] = []
    for index, record in enumerate(records):
        try:
            verdicts.append(check(record))
        except DomainError as error:
            raw_id = record.get(key_field) if type(record) is dict else None
            verdicts.append(
                RecordError(
                    index,
                    raw_id if type(raw_id) is str else None,
                    error.code,
                    error.message,
                    error.details.get("field"),
                )
            )
    return verdicts


# --- storage ----------------------------------------------------------------------------------


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
    """Write the valid records in one transaction: all of them, or with ``partial`` the valid ones."""
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
    session: AsyncSession,
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
    batch = _the_batch(records, records_json, settings.max_batch_records)
    verdicts = validate_batch(kind, batch, principal, settings.event_types, datetime.now(UTC))
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
        placements = await directory.placements(session, principal, (row["user_id"] for _, row in valid))
    key_column = _TARGETS[kind].key_column
    for index, row in valid:
        try:
            placements.check(row["user_id"], Scope(*(row[f"{level}_id"] for level in LEVELS)))
        except OutOfScope as error:
            verdicts[index] = RecordError(index, row[key_column], error.code, error.message, "scope")


__all__ = [
    "BatchOutcome",
    "LogKind",
    "RecordError",
    "RecordStatus",
    "RecordValidator",
    "Row",
    "ValidRecord",
    "log_batch",
    "store_batch",
    "validate_batch",
]
