"""The REST application (FastAPI), mounted by ``app.main`` beside GraphQL.

FastAPI gives the route and pydantic model definitions and generates the OpenAPI 3.1 document
(``/operator/openapi.json``, hidden in production as introspection is). Its own 422 validation
answers are replaced by the contract's envelope (``rest.errors``), and the generated document
says so: the 422 responses FastAPI adds to every operation are taken out of it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ids import UniqueIds
from app.pubsub import Broker
from app.services.ops.state import OpsRuntime
from app.settings import Settings
from persistence.db import Database
from rest import data, ops, upm
from rest.calls import Services
from rest.errors import HANDLERS

ROUTERS = (upm.router, ops.router, data.router)
PREFIX = "/operator"
OPENAPI_PATH = f"{PREFIX}/openapi.json"
DESCRIPTION = (
    "The specification's REST paths (upm-api-v2, ops-api-v2) and this project's data-layer paths, "
    "over the same services as the GraphQL API at /graphql. Errors: "
    '`{"error": {"code", "message", "details"}}` with the contract\'s codes.'
)


def _without_422(document: dict[str, Any]) -> dict[str, Any]:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return document


def _roles(route: APIRoute) -> list[str] | None:
    for dependency in route.dependant.dependencies:
        roles = getattr(dependency.call, "roles", None)
        if roles is not None:
            return sorted(role.value for role in roles)
    return None


def _with_roles(document: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Each operation says who may call it (``x-roles``: the role set of ``app.policy``)."""
    for route in routes:
        if isinstance(route, APIRoute) and (roles := _roles(route)) is not None:
            for method in route.methods or ():
                operation = document["paths"][route.path_format][method.lower()]
                operation["x-roles"] = roles
                operation["description"] = (
                    operation.get("description", "") + f"\n\nRoles: {', '.join(roles)}."
                ).strip()
    return document


def create_rest_app(
    settings: Settings, db: Database, ops_runtime: OpsRuntime, broker: Broker, request_ids: UniqueIds
) -> FastAPI:
    api = FastAPI(
        title="trainer-console REST",
        version="2",
        description=DESCRIPTION,
        openapi_url=None if settings.is_production else OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        exception_handlers=dict(HANDLERS),  # type: ignore[arg-type]
    )
    api.state.services = Services(settings, db, ops_runtime, broker, request_ids)
    for router in ROUTERS:
        api.include_router(router)

    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            routes = [route for router in ROUTERS for route in router.routes]
            api.openapi_schema = _with_roles(_without_422(generate()), routes)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def mount(api: FastAPI) -> Mount:
    """``/operator`` and everything under it, to the REST app; its regex also matches a path with
    an encoded newline (``%0A``), which Starlette's does not, so that every ``/operator`` path is
    answered by the REST app (404 in the envelope) and never by the outer plain-text 404."""
    route = Mount(PREFIX, Unmounted(api))
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


class Unmounted:
    """Mounted at ``/operator`` by the Starlette app, the REST app routes on the full path
    (``/operator/upm/...``), so that the OpenAPI document names the paths clients call.

    An unexpected exception has been answered (masked 500) and logged by ``rest.errors`` when
    Starlette's ServerErrorMiddleware raises it again; it stops here instead of being logged a
    second time by the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app({**scope, "root_path": scope.get("app_root_path", "")}, receive, sending)
        except Exception:
            if not started or scope["type"] != "http":
                raise
