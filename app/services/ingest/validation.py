"""Validation of the raw logs (data-layer §3.1-3.3, §6, §7, AG-DATA-04).

Both GraphQL argument forms (typed inputs and the ``recordsJson`` list) reach
this module as plain camelCase dicts, so ONE validator decides every record and
the two forms cannot drift apart. The validator is hand-written rather than a
pydantic model because it runs on every record of batches of thousands and
must map each problem to the contract's code (scope, version, schema, scope
bound), in that order. Its answer is the row to store, with the SHA-256 of the
record's canonical JSON that ``storage`` tells re-sends from conflicts by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, cast

import orjson

from app.auth import Principal
from app.errors import DomainError, SchemaMismatch, ScopeMissing, VersionMissing
from app.scope import Scope, ensure_can_write
from app.services.ingest.fields import (
    ACTION_MAX,
    CONTEXT_FIELDS,
    EVENT_FIELDS,
    INTERACTION_ENGINES,
    INTERACTION_FIELDS,
    METADATA_FIELDS,
    OUTCOMES,
    REWARD_EVENT,
    SCOPE_FIELDS,
    SCOPE_KEYS,
    SESSION_ENGINES,
    SESSION_FIELDS,
    SUMMARY_FIELDS,
    TEXT_MAX,
    VERSION_FIELDS,
    VERSION_KEYS,
    VERSION_MAX,
    boolean,
    choice,
    count,
    instant,
    log_id,
    missing,
    number,
    object_field,
    opt_boolean,
    opt_count,
    opt_text,
    refuse_unknown,
    reward_action,
    text,
    trait_list,
)
from app.validation import check_id


class LogKind(StrEnum):
    EVENT = "event"
    INTERACTION = "interaction"
    SESSION = "session"


KEY_FIELDS = {LogKind.EVENT: "eventId", LogKind.INTERACTION: "interactionId", LogKind.SESSION: "sessionId"}
"""The field that is a record's id, and its idempotency key."""


@dataclass(frozen=True, slots=True)
class RecordError:
    index: int
    id: str | None
    code: str
    message: str
    field: str | None


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


_ABSENT: Any = object()  # a version key that is not there (null is a value)


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
            raise missing(name)
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
        scope = object_field(scope, "scope")
        key = tuple(scope.get(name) for name in SCOPE_FIELDS)
        if None in key:
            name = f"scope.{SCOPE_FIELDS[key.index(None)]}"
            raise ScopeMissing(f"{name} is missing", field=name)
        refuse_unknown(scope, SCOPE_KEYS, "scope.")
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
        version = object_field(version, "version")
        for name in VERSION_FIELDS:
            if name not in version:
                raise VersionMissing(
                    f"version.{name} is missing (send null where there is none)", field=f"version.{name}"
                )
        refuse_unknown(version, VERSION_KEYS, "version.")
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
        refuse_unknown(record, allowed, "")
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
        event_id = log_id(record.get("eventId"), "eventId")
        ts = instant(record.get("timestamp"), "timestamp")
        user_id = self.id(record.get("userId"), "userId")
        event_type = record.get("eventType")
        if event_type is None:
            raise missing("eventType")
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
            context = object_field(context, "context")
            refuse_unknown(context, CONTEXT_FIELDS, "context.")
            module_id = self.opt_id(context.get("moduleId"), "context.moduleId")
            quiz_id = self.opt_id(context.get("quizId"), "context.quizId")
            scenario_id = self.opt_id(context.get("scenarioId"), "context.scenarioId")
            turn_index = opt_count(context.get("turnIndex"), "context.turnIndex")
            action = opt_text(context.get("action"), "context.action", ACTION_MAX)
        if event_type == REWARD_EVENT:
            reward_action(action)
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
        interaction_id = log_id(record.get("interactionId"), "interactionId")
        session_id = log_id(record.get("sessionId"), "sessionId")
        ts = instant(record.get("timestamp"), "timestamp")
        user_id = self.id(record.get("userId"), "userId")
        engine = choice(record.get("engine"), "engine", INTERACTION_ENGINES)
        text_in = record.get("input")
        if text_in is None:
            raise missing("input")
        text_in = text(text_in, "input", TEXT_MAX)
        text_out = opt_text(record.get("output"), "output", TEXT_MAX)
        metadata = record.get("metadata")
        if metadata is None:
            raise missing("metadata")
        metadata = object_field(metadata, "metadata")
        refuse_unknown(metadata, METADATA_FIELDS, "metadata.")
        level = metadata.get("difficultyLevel")
        difficulty = None if level is None else number(level, "metadata.difficultyLevel")
        persona_id = self.opt_id(metadata.get("personaId"), "metadata.personaId")
        traits = trait_list(metadata.get("traitActivation"))
        upsell = metadata.get("upsellTriggered")
        if upsell is None:
            raise missing("metadata.upsellTriggered")
        upsell = boolean(upsell, "metadata.upsellTriggered")
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
        session_id = log_id(record.get("sessionId"), "sessionId")
        user_id = self.id(record.get("userId"), "userId")
        engine = choice(record.get("engine"), "engine", SESSION_ENGINES)
        start = instant(record.get("startTime"), "startTime")
        end = instant(record.get("endTime"), "endTime")
        if end < start:
            raise SchemaMismatch("endTime is before startTime", field="endTime")
        duration = record.get("durationSec")
        if duration is None:
            raise missing("durationSec")
        duration = number(duration, "durationSec", minimum=0)
        outcome = record.get("outcome")
        if outcome is not None:
            outcome = choice(outcome, "outcome", OUTCOMES)
        summary = record.get("summary")
        if summary is None:
            raise missing("summary")
        summary = object_field(summary, "summary")
        refuse_unknown(summary, SUMMARY_FIELDS, "summary.")
        turns = summary.get("turnCount")
        if turns is None:
            raise missing("summary.turnCount")
        turns = count(turns, "summary.turnCount")
        correct = opt_count(summary.get("correctAnswers"), "summary.correctAnswers")
        attempts = opt_count(summary.get("upsellAttempts"), "summary.upsellAttempts")
        success = opt_boolean(summary.get("upsellSuccess"), "summary.upsellSuccess")
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
    key_field = KEY_FIELDS[kind]
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


__all__ = [
    "KEY_FIELDS",
    "LogKind",
    "RecordError",
    "RecordValidator",
    "Row",
    "ValidRecord",
    "validate_batch",
]
