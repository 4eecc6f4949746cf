"""One place that turns exceptions into GraphQL errors with the contract's codes.

- a DomainError keeps its message and code (and details such as retryAfterSeconds);
- PostgreSQL refusing a NUL in a value is the client's: E_SCHEMA_MISMATCH;
- an error raised before execution or while coercing input (parse, validation,
  limits, wrong variable types) is the client's: E_SCHEMA_MISMATCH;
- a database that cannot be reached (down, restarting) is a DatabaseUnavailable: a clear,
  retryable message with INTERNAL_SERVER_ERROR;
- anything else is masked as INTERNAL_SERVER_ERROR and logged with its traceback.
"""

from __future__ import annotations

import logging

from graphql.error import GraphQLError

from app.errors import DatabaseUnavailable, DomainError, SchemaMismatch
from persistence.faults import database_unreachable, text_not_storable

log = logging.getLogger("trainer_console.errors")

INTERNAL_MESSAGE = "Internal server error."


def _original(error: GraphQLError) -> BaseException | None:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original


def _unreachable(error: GraphQLError) -> BaseException | None:
    original = _original(error)
    if original is None or isinstance(original, (GraphQLError, DomainError)):
        return None
    return original if database_unreachable(original) else None


NUL_MESSAGE = "a value must not contain NUL (\\u0000)"


def _domain_error(error: GraphQLError) -> DomainError | None:
    original = _original(error)
    if isinstance(original, DomainError):
        return original
    if text_not_storable(original):  # a NUL a service let through: the client's, not ours
        return SchemaMismatch(NUL_MESSAGE)
    if _unreachable(error) is not None:
        return DatabaseUnavailable()
    return None


def _where(error: GraphQLError) -> str:
    return ".".join(map(str, error.path or [])) or "operation"


def _describe(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"


def is_internal(error: GraphQLError) -> bool:
    """True for errors that are our bug, not the client's mistake."""
    if _domain_error(error) is not None:
        return False
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def with_code(error: GraphQLError) -> GraphQLError:
    domain = _domain_error(error)
    if domain is not None:
        extensions = {**(error.extensions or {}), **domain.extensions()}
        message = domain.message
    elif is_internal(error):
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
        message = INTERNAL_MESSAGE
    else:
        extensions = {"code": "E_SCHEMA_MISMATCH", **(error.extensions or {})}
        message = error.message
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def code_of(error: GraphQLError) -> str:
    """The contract code ``with_code`` gives this error (for metrics and logs, before it does)."""
    if _has_code(error):
        return str((error.extensions or {})["code"])
    domain = _domain_error(error)
    if domain is not None:
        return domain.code
    if is_internal(error):
        return "INTERNAL_SERVER_ERROR"
    return str((error.extensions or {}).get("code", "E_SCHEMA_MISMATCH"))


def with_codes(errors: list[GraphQLError]) -> list[GraphQLError]:
    """The errors a client sees: every one carries ``extensions.code``.

    Idempotent, so a result passing through twice is unchanged."""
    return [error if _has_code(error) else with_code(error) for error in errors]


def _has_code(error: GraphQLError) -> bool:
    return (
        error.original_error is None and "code" in (error.extensions or {}) and _domain_error(error) is None
    )


def log_internal_errors(errors: list[GraphQLError], request_id: str | None = None) -> None:
    """A masked error's traceback goes to the log with the request's id (the log line of the
    request and the audit entries carry the same id)."""
    extra = {"request_id": request_id}
    for error in errors:
        if is_internal(error):
            log.error("unexpected error in %s", _where(error), exc_info=error.original_error, extra=extra)
        elif (cause := _unreachable(error)) is not None:
            log.warning("database unavailable in %s: %s", _where(error), _describe(cause), extra=extra)
