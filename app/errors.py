"""Domain exceptions carrying the contract's error codes.

Services raise these; the GraphQL error handler and the REST layer map them to
``extensions.code`` / ``{"error": {...}}``. Anything else is masked as internal.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, **self.details}


class SchemaMismatch(DomainError):
    code = "E_SCHEMA_MISMATCH"
    http_status = 400


class VersionMissing(DomainError):
    code = "E_VERSION_MISSING"
    http_status = 400


class ScopeMissing(DomainError):
    code = "E_SCOPE_MISSING"
    http_status = 400


class OutOfScope(DomainError):
    code = "E_OUT_OF_SCOPE"
    http_status = 403


class DuplicateSnapshot(DomainError):
    code = "E_DUPLICATE_SNAPSHOT"
    http_status = 409


class AggregationConflict(DomainError):
    code = "E_AGG_CONFLICT"
    http_status = 409


class ReloadFailed(DomainError):
    code = "E_RELOAD_FAILED"
    http_status = 409  # the target conflicts with what is stored; the previous ruleset stays


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(DomainError):
    code = "FORBIDDEN"
    http_status = 403


class NotFound(DomainError):
    code = "NOT_FOUND"
    http_status = 404


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, retry_after_seconds: int | None, **details: Any) -> None:
        """``retry_after_seconds`` is None when waiting can never help (the operation alone
        costs more than the whole budget); ``details`` then say what would fit."""
        super().__init__(message, retryAfterSeconds=retry_after_seconds, **details)


class DatabaseUnavailable(DomainError):
    """The database is down or restarting: nothing was written, and a retry will do.

    Still INTERNAL_SERVER_ERROR (the contract's code for a failure that is not the client's),
    but with a message that says what happened and when to come back, instead of a masked one."""

    http_status = 503
    MESSAGE: ClassVar[str] = (
        "The database is unavailable (down or restarting); nothing was written. Retry shortly."
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE, retryAfterSeconds=1, reason="DATABASE_UNAVAILABLE")
