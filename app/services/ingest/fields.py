"""The field rules of the data-layer log schemas (§3.1-3.3): sizes, field sets and one check per
kind of value, each raising the SchemaMismatch that names its field.

They are plain functions over plain values so that the record validator
(``validation``) can call them on every record of large batches at no more cost than
a function call.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, cast

from app.errors import SchemaMismatch
from app.validation import check_id, is_id

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


def missing(name: str) -> SchemaMismatch:
    return SchemaMismatch(f"{name} is required", field=name)


def refuse_unknown(record: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    if not allowed.issuperset(record):
        name = prefix + sorted(set(record) - allowed)[0]
        raise SchemaMismatch(f"unknown field {name} (data-layer schemas are fixed)", field=name)


def object_field(value: object, name: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise SchemaMismatch(f"{name} must be an object", field=name)
    return value


def log_id(value: object, name: str) -> str:
    if value is None:
        raise missing(name)
    check_id(name, cast(str, value))
    if len(cast(str, value)) > LOG_ID_MAX:
        raise SchemaMismatch(f"{name} must be at most {LOG_ID_MAX} characters", field=name)
    return cast(str, value)


def instant(value: object, name: str) -> datetime:
    """ISO 8601 with a UTC offset ('Z' or '+09:00'); stored in UTC."""
    if value is None:
        raise missing(name)
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


def count(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= INT_MAX:
        raise SchemaMismatch(f"{name} must be a non-negative integer", field=name)
    return value


def opt_count(value: object, name: str) -> int | None:
    return None if value is None else count(value, name)


def number(value: object, name: str, *, minimum: float | None = None) -> float:
    if type(value) is not float and type(value) is not int:
        raise SchemaMismatch(f"{name} must be a number", field=name)
    as_float = float(value)
    if not math.isfinite(as_float) or (minimum is not None and as_float < minimum):
        bound = "a finite number" if minimum is None else f"a finite number >= {minimum:g}"
        raise SchemaMismatch(f"{name} must be {bound}", field=name)
    return as_float


def boolean(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise SchemaMismatch(f"{name} must be true or false", field=name)
    return value


def opt_boolean(value: object, name: str) -> bool | None:
    return None if value is None else boolean(value, name)


def text(value: object, name: str, max_length: int) -> str:
    if type(value) is not str or len(value) > max_length or "\x00" in value:
        raise SchemaMismatch(
            f"{name} must be a string of at most {max_length} characters, without NUL", field=name
        )
    return value


def opt_text(value: object, name: str, max_length: int) -> str | None:
    return None if value is None else text(value, name, max_length)


def choice(value: object, name: str, allowed: frozenset[str]) -> str:
    if value is None:
        raise missing(name)
    if type(value) is not str or value not in allowed:
        raise SchemaMismatch(f"{name} must be one of {', '.join(sorted(allowed))}", field=name)
    return value


def reward_action(action: str | None) -> None:
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


def trait_list(value: object) -> list[str]:
    name = "metadata.traitActivation"
    if value is None:
        raise missing(name)
    if type(value) is not list or len(value) > TRAITS_MAX:
        raise SchemaMismatch(f"{name} must be a list of at most {TRAITS_MAX} strings", field=name)
    for trait in value:
        if type(trait) is not str or not trait.strip() or len(trait) > TRAIT_MAX or "\x00" in trait:
            raise SchemaMismatch(f"{name} items must be strings of 1-{TRAIT_MAX} characters", field=name)
    return cast(list[str], value)


def the_batch(records: list[Any] | None, records_json: object, max_records: int) -> list[Any]:
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
