"""The four log POSTs (``/operator/upm/{scenario|quiz|learning|mission}/log``), the engines' hot path,
served without FastAPI's per-request machinery (route matching over every route, dependency
solving, its exit stack; about a third of a log's CPU through FastAPI), and without the app's
router and mount in front of it.

Nothing else differs: the routes are declared in ``rest.upm`` (which the OpenAPI document is
generated from) with the same body models; a call goes through the same ``begin``/``end``
(authentication, the LOG_WRITERS role set, the engine's admission and timing) and the same
``log_response`` (Idempotency-Key, the UPM service, the group-commit writer); errors take the same
envelope, in the same order (401/403 before a bad body, as FastAPI solves the caller first).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app import policy
from app.errors import DomainError, SchemaMismatch
from rest.calls import Services, begin, end
from rest.errors import domain_response, invalid, on_unexpected
from rest.models import LearningLogBody, MissionLogBody, QuizLogBody, ScenarioLogBody
from rest.upm import log_response

LOGS: dict[str, tuple[str, type[BaseModel], str]] = {  # path -> (kind, body, endpoint)
    f"/operator/upm/{kind}/log": (kind, model, f"POST /operator/upm/{kind}/log")
    for kind, model in (
        ("scenario", ScenarioLogBody),
        ("quiz", QuizLogBody),
        ("learning", LearningLogBody),
        ("mission", MissionLogBody),
    )
}


class _Headers:
    """The request's headers by name, read once into a dict (the first of a repeated name, as
    Starlette's ``Headers.get`` answers): the lane reads four of them."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = dict(reversed(raw))

    def get(self, name: str, /) -> str | None:
        value = self._raw.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")


async def _body(receive: Receive) -> bytes:
    """The request body (``Request.body`` without the request)."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class FastLane:
    """ASGI middleware of the app (``app.main``), inside the request telemetry and the body-size
    limit, before the router: a log POST goes no further than here; everything else goes on to
    the app's routes (and ``/operator`` to the FastAPI app)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.services: Services = api.state.services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = LOGS.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await self._log(scope, receive, *route)
        except ClientDisconnect:  # gone before its body arrived: nobody to answer, nothing done
            return
        await response(scope, receive, send)

    async def _log(
        self, scope: Scope, receive: Receive, kind: str, model: type[BaseModel], endpoint: str
    ) -> Response:
        headers = _Headers(scope["headers"])
        try:
            call, metered = await begin(self.services, headers, policy.LOG_WRITERS, endpoint, scope)
        except DomainError as refused_early:
            return domain_response(refused_early)
        error: BaseException | None = None
        try:
            if not _json(headers.get("content-type")):
                error = SchemaMismatch("the body must be JSON", field="body")
                return domain_response(error)
            try:
                body: Any = model.model_validate_json(await _body(receive))
            except ValidationError as problem:
                error = problem
                return invalid([{**e, "loc": ("body", *e["loc"])} for e in problem.errors()])
            return await log_response(call, kind, body.record(), headers.get("idempotency-key"))
        except DomainError as refused:
            error = refused
            return domain_response(refused)
        except ClientDisconnect:
            raise
        except Exception as unexpected:
            error = unexpected
            return await on_unexpected(Request(scope, receive), unexpected)
        finally:
            await end(metered, error)
