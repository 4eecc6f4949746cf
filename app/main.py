"""The Starlette application: GraphQL, health probes and request protection."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from app.auth import principal_from_header
from app.errors import SchemaMismatch, Unauthenticated
from app.ids import request_ids
from app.middleware import BodySizeLimit
from app.pubsub import Broker
from app.services.analytics import KPIS_TOPIC, LiveDeriver
from app.services.ops.limits import live_body_limit
from app.services.ops.state import OpsRuntime
from app.settings import Settings, get_settings
from app.validation import is_id
from graphql_schema.context import Context
from graphql_schema.loaders import Loaders
from graphql_schema.schema import build_schema
from persistence.db import Database

log = logging.getLogger("trainer_console")


_OVER_POST = frozenset({OperationType.QUERY, OperationType.MUTATION})


def _bad_request(message: str) -> Response:
    """A request that is not a GraphQL request at all (GraphQL over HTTP: 400), in the shape
    of every other error, with the contract's code."""
    body = {"errors": [{"message": message, "extensions": {"code": SchemaMismatch.code}}]}
    return Response(orjson.dumps(body), status_code=400, media_type="application/json")


def _request_id(header: str | None) -> str | None:
    """A caller's X-Request-Id is kept (audit entries and logs carry it) only when it is an id."""
    return header if is_id(header) else None


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, settings: Settings, db: Database, ops: OpsRuntime) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.settings = settings
        self.db = db
        self.ops = ops
        coordination = ops.coordination
        self.broker = Broker(relay=coordination.publish, on_listen=coordination.start)
        coordination.subscribe(self.broker.deliver)
        coordination.on_resume(self.broker.deliver_all)
        self.request_ids = request_ids()
        self.make_loaders = partial(Loaders.create, db)

    async def run(self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """A POST of JSON takes a short path; everything else (GraphiQL, WebSockets, multipart)
        goes through Strawberry's view. Strawberry's generic request handling (content-type
        parsing, protocol negotiation) costs about a fifth of a small request."""
        try:
            if (
                isinstance(request, Request)
                and request.method == "POST"
                and request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                == "application/json"
            ):
                return await self._post_json(request)
            return await super().run(request, context, root_value)
        except ClientDisconnect:  # gone before its body arrived: nobody to answer, nothing done
            return Response(status_code=400)

    async def _post_json(self, request: Request) -> Response:
        try:
            data = self.decode_json(await request.body())
        except json.JSONDecodeError:
            return _bad_request("Unable to parse request body as JSON")
        if isinstance(data, list):
            return _bad_request("Batching is not enabled")
        if not isinstance(data, dict):
            return _bad_request("The request body must be a JSON object")
        query, variables, operation_name = data.get("query"), data.get("variables"), data.get("operationName")
        if not isinstance(query, str) or not query:
            return _bad_request("No GraphQL query found in the request")
        if variables is not None and not isinstance(variables, dict):
            return _bad_request("variables must be a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            return _bad_request("operationName must be a string")
        context = await self.get_context(request, Response())
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=_OVER_POST,
            )
        except CannotGetOperationTypeError as exc:
            return _bad_request(exc.as_http_error_reason())
        except InvalidOperationTypeError as exc:
            return _bad_request(exc.as_http_error_reason("POST"))
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            body["extensions"] = result.extensions
        return Response(orjson.dumps(body), media_type="application/json")

    def decode_json(self, data: str | bytes) -> object:
        """Interoperable JSON only (RFC 7493, I-JSON): UTF-8, no lone surrogate escapes (no
        database stores one, and no response could echo it), no NaN or Infinity, at most 1024
        levels deep. Anything else raises ``JSONDecodeError``: HTTP answers 400, and a WebSocket
        message closes the connection (4400), as graphql-transport-ws says."""
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Browsers cannot set headers on a WebSocket: the token may come in connection_init."""
        authorization = (context.connection_params or {}).get("Authorization")
        if isinstance(authorization, str):
            try:
                context._principal = principal_from_header(self.settings, authorization)
                context._auth_error = None
            except Unauthenticated as exc:
                context._principal, context._auth_error = None, exc
        return cast(UnsetType, UNSET)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        context = Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            settings=self.settings,
            db=self.db,
            make_loaders=self.make_loaders,
            request_id=_request_id(request.headers.get("x-request-id")) or self.request_ids.next(),
            ops=self.ops,
            broker=self.broker,
        )
        try:
            context._principal = principal_from_header(self.settings, request.headers.get("authorization"))
        except Unauthenticated as exc:
            context._auth_error = exc
        return context


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    settings.check_safe()
    db = Database(settings)
    ops = OpsRuntime(settings, db)
    graphql = GraphQLApp(settings, db, ops)
    # live analytics: folds new raw records into today's counters, off the request path
    deriver = LiveDeriver(
        db,
        settings.quiz_pass_threshold,
        settings.live_derive_interval,
        lambda _: graphql.broker.publish(KPIS_TOPIC),
    )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            latency = await db.ping()
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": db.dialect, "latencyMs": round(latency, 2)})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Everything made so far (schema, routes, settings) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise cost milliseconds.
        gc.collect()
        gc.freeze()
        # Listening before the first request, so no live update published after start-up is missed.
        await ops.coordination.started(within_seconds=2.0)
        if settings.live_derive:
            deriver.start()
        yield
        await deriver.stop()
        await db.dispose()

    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, live_limit=live_body_limit(ops))
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.ops = ops
    app.state.deriver = deriver  # deriver.lag_seconds: its latest COMMIT-to-counters lag
    return app
