"""GraphQL over HTTP: what a request asks for, and how its answer is sent.

Two media types are served (the GraphQL-over-HTTP specification):

- ``application/json`` (the default: no ``Accept``, ``*/*``, or anything that does not name the
  other): every well-formed GraphQL request is answered 200 with ``data`` (null when execution
  never started), as before;
- ``application/graphql-response+json``, when ``Accept`` prefers it: a request error (parse,
  validation, variable coercion, missing token, rate limit: execution never started) answers
  without ``data`` and with a 4xx status (5xx for a server failure); once execution started the
  answer is 200 with ``data``.

A request that is not a GraphQL request at all (no JSON, no query, a wrong method or content
type) is refused with a 4xx status under either media type, always as JSON with a contract code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.responses import Response
from strawberry.types import ExecutionResult

from app.errors import DomainError, SchemaMismatch

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
_CONTENT_TYPES = {JSON: JSON, GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8"}


class RequestError(Exception):
    """A request refused before any GraphQL work: HTTP status, message, contract code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = SchemaMismatch.code,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def refusal(error: RequestError, media_type: str = JSON) -> Response:
    body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        headers=error.headers,
        media_type=_CONTENT_TYPES[media_type],
    )


def response_media_type(accept: str | None) -> str:
    """``application/graphql-response+json`` when the Accept header prefers it (by q-value; a
    tie between the two named types goes to it), else ``application/json``: also for an Accept
    header that names neither, which the specification lets a server disregard."""
    if not accept or GRAPHQL_RESPONSE not in accept:  # the common case, decided without parsing
        return JSON
    best_q = json_q = 0.0
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == GRAPHQL_RESPONSE:
            best_q = max(best_q, q)
        elif media in (JSON, "application/*", "*/*"):
            json_q = max(json_q, q)
    return GRAPHQL_RESPONSE if best_q > 0 and best_q >= json_q else JSON


def is_json_content(content_type: str) -> bool:
    """``application/json``, with no charset or UTF-8 (JSON is UTF-8, RFC 8259)."""
    if content_type == JSON:
        return True
    media, *params = content_type.split(";")
    if media.strip().lower() != JSON:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


Params = tuple[str, dict[str, Any] | None, str | None, dict[str, Any] | None]


def params_from_body(data: object) -> Params:
    """query, variables, operationName and extensions of a decoded JSON body."""
    if isinstance(data, list):
        raise RequestError(400, "Batching is not enabled")
    if not isinstance(data, dict):
        raise RequestError(400, "The request body must be a JSON object")
    query, variables = data.get("query"), data.get("variables")
    operation_name, extensions = data.get("operationName"), data.get("extensions")
    if not isinstance(query, str) or not query:
        raise RequestError(400, "No GraphQL query found in the request")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "operationName must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "extensions must be a JSON object")
    return query, variables, operation_name, extensions


def params_from_query_string(params: Mapping[str, str], decode: Any) -> Params:
    """The same from a GET's query string, where variables and extensions are JSON text."""
    data: dict[str, object] = {"query": params.get("query"), "operationName": params.get("operationName")}
    for name in ("variables", "extensions"):
        text = params.get(name)
        if text:
            try:
                data[name] = decode(text)
            except ValueError as exc:  # JSONDecodeError, or orjson's
                raise RequestError(400, f"{name} must be a JSON object") from exc
    return params_from_body(data)


def _started(result: ExecutionResult) -> bool:
    """Execution started if there is data, or a field error (only those have a path):
    parse, validation and variable-coercion errors, like refusals before execution, have none."""
    return result.data is not None or any(error.path for error in result.errors or ())


_STATUS_BY_CODE = {cls.code: cls.http_status for cls in DomainError.__subclasses__()}
_STATUS_BY_CODE[SchemaMismatch.code] = 400  # the specification's status for a request error
_STATUS_BY_CODE["INTERNAL_SERVER_ERROR"] = 500


def _status(errors: list[GraphQLError]) -> int:
    extensions = errors[0].extensions or {}
    if extensions.get("reason") == "DATABASE_UNAVAILABLE":
        return 503
    return _STATUS_BY_CODE.get(str(extensions.get("code")), 400)


def answer(result: ExecutionResult, media_type: str) -> Response:
    """The HTTP answer to an executed (or refused) GraphQL request."""
    status = 200
    body: dict[str, Any] = {}
    if media_type == JSON or _started(result):
        body["data"] = result.data
    elif result.errors:
        status = _status(result.errors)
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    headers = None
    if status == 401:
        headers = {"www-authenticate": "Bearer"}
    elif status in (429, 503) and result.errors:
        retry = (result.errors[0].extensions or {}).get("retryAfterSeconds")
        headers = {"retry-after": str(retry)} if isinstance(retry, int) else None
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type=_CONTENT_TYPES[media_type]
    )
