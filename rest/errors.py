"""The REST error envelope: ``{"error": {"code", "message", "details"}}`` with the contract's codes.

One mapping, used by every route: a ``DomainError`` keeps its code and details and answers with
its ``http_status`` (``app.errors``); a request FastAPI cannot bind (malformed JSON, a wrong type,
an unknown field, a missing parameter) is 400 ``E_SCHEMA_MISMATCH``, never FastAPI's 422; an
unknown path is 404 ``NOT_FOUND``; a database that cannot be reached is 503 with
``Retry-After``; anything else is a masked 500 ``INTERNAL_SERVER_ERROR``, logged with its trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.errors import DatabaseUnavailable, DomainError, RateLimited, SchemaMismatch
from persistence.faults import database_unreachable

log = logging.getLogger("trainer_console.rest")

INTERNAL_MESSAGE = "Internal server error."
CODES = (
    "E_SCHEMA_MISMATCH",
    "E_VERSION_MISSING",
    "E_SCOPE_MISSING",
    "E_OUT_OF_SCOPE",
    "E_DUPLICATE_SNAPSHOT",
    "E_AGG_CONFLICT",
    "E_RELOAD_FAILED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "RATE_LIMITED",
    "INTERNAL_SERVER_ERROR",
)


class ErrorBody(BaseModel):
    code: str = Field(description="One of the contract's codes.", json_schema_extra={"enum": list(CODES)})
    message: str
    details: dict[str, Any] = Field(
        description="What the code needs: e.g. field, retryAfterSeconds, limitBytes, errors."
    )


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def envelope(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, **headers: str
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def domain_response(error: DomainError) -> Response:
    headers: dict[str, str] = {}
    retry = error.details.get("retryAfterSeconds")
    if isinstance(error, RateLimited | DatabaseUnavailable) and isinstance(retry, int):
        headers["Retry-After"] = str(max(retry, 1))
    return envelope(error.http_status, error.code, error.message, error.details, **headers)


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "scope", "teamId") -> scope.teamId; ("query", "first") -> first
    parts = [str(part) for part in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header") else []
    return ".".join(parts) if parts else ".".join(str(part) for part in loc)


async def on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return invalid(exc.errors())


def invalid(problems: Sequence[Any]) -> Response:
    """400 E_SCHEMA_MISMATCH for pydantic's errors (``loc`` starting with body, query, path...)."""
    errors = [
        {"field": _field(tuple(error.get("loc", ()))), "message": str(error.get("msg", ""))}
        for error in problems
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return envelope(400, SchemaMismatch.code, message, {"field": first["field"], "errors": errors})


async def on_domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_response(exc)


async def on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return envelope(404, "NOT_FOUND", "no such path")
    if exc.status_code == 405:
        return envelope(405, SchemaMismatch.code, "method not allowed on this path")
    return envelope(exc.status_code, SchemaMismatch.code, str(exc.detail))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    if database_unreachable(exc):
        log.warning("database unavailable in %s %s: %s", request.method, request.url.path, exc)
        return domain_response(DatabaseUnavailable())
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(500, "INTERNAL_SERVER_ERROR", INTERNAL_MESSAGE)


HANDLERS = {
    RequestValidationError: on_validation_error,
    DomainError: on_domain_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}

_DESCRIPTIONS = {
    400: "E_SCHEMA_MISMATCH (malformed body, wrong type, unknown field), E_VERSION_MISSING, E_SCOPE_MISSING",
    401: "UNAUTHENTICATED: missing or invalid bearer token",
    403: "FORBIDDEN (role or scope) or E_OUT_OF_SCOPE",
    404: "NOT_FOUND: no such user, toggle, release, built day or path",
    409: "E_DUPLICATE_SNAPSHOT, E_AGG_CONFLICT, E_RELOAD_FAILED",
    413: "E_SCHEMA_MISMATCH: the body is larger than fileUploadLimitMb / the server's ceiling",
    429: "RATE_LIMITED, with a Retry-After header (engines: aiCallsPerMinute, maxConcurrentSessions)",
    500: "INTERNAL_SERVER_ERROR, masked",
    503: "INTERNAL_SERVER_ERROR with reason DATABASE_UNAVAILABLE and Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents: the common ones and those it adds."""
    wanted = sorted({400, 401, 403, 404, 413, 429, 500, 503, *statuses})
    out: dict[int | str, dict[str, Any]] = {}
    for status in wanted:
        entry: dict[str, Any] = {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        out[status] = entry
    return out
