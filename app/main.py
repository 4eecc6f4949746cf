"""The Starlette application: GraphQL, health probes and request protection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable
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

from app import observability
from app.auth import principal_from_header
from app.errors import Unauthenticated
from app.ids import request_ids
from app.middleware import BodySizeLimit
from app.pubsub import Broker
from app.services.analytics import KPIS_TOPIC, LiveDeriver
from app.services.analytics.live import latest_lag_seconds
from app.services.ops.limits import live_body_limit
from app.services.ops.state import OpsRuntime
from app.settings import Settings, get_settings
from app.validation import is_id
from graphql_schema.context import Context
from graphql_schema.loaders import Loaders
from graphql_schema.schema import build_schema
from graphql_schema.transport import (
    Params,
    RequestError,
    answer,
    is_json_content,
    params_from_body,
    params_from_query_string,
    refusal,
    response_media_type,
)
from persistence.db import Database
from rest.app import create_rest_app
from rest.app import mount as rest_mount
from rest.fastlane import FastLane

log = logging.getLogger("trainer_console")


_OVER_POST = frozenset({OperationType.QUERY, OperationType.MUTATION})
_OVER_GET = frozenset({OperationType.QUERY})
_METHODS = {"allow": "GET, POST"}


def _request_id(header: str | None) -> str | None:
    """A caller's X-Request-Id is kept (audit entries and logs carry it) only when it is an id."""
    return header if is_id(header) else None


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept


def _request_id_of(request: Request | WebSocket) -> str | None:
    """The id RequestTelemetry gave this request (the caller's or a fresh one); a WebSocket
    keeps the one of its upgrade request when it is an id."""
    record = observability.record_of(request.scope)
    if record is not None:
        return record.request_id
    return _request_id(request.headers.get("x-request-id"))


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, settings: Settings, db: Database, ops: OpsRuntime) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=True,
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
        """HTTP is GraphQL over HTTP (graphql_schema.transport): POST of JSON, GET of a query,
        GET of the GraphiQL page; WebSockets go through Strawberry's view. Strawberry's generic
        request handling (content-type parsing, protocol negotiation) costs about a fifth of a
        small request, and answers its refusals in plain text."""
        if isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        media_type = response_media_type(request.headers.get("accept"))
        try:
            if request.method == "POST":
                if not is_json_content(request.headers.get("content-type", "")):
                    raise RequestError(415, "the request body must be application/json")
                try:
                    data = self.decode_json(await request.body())
                except json.JSONDecodeError as exc:
                    raise RequestError(400, "Unable to parse request body as JSON") from exc
                return await self._execute(request, params_from_body(data), media_type, _OVER_POST)
            if request.method == "GET":
                if "query" not in request.query_params:
                    if self.graphql_ide and _wants_html(request):
                        return await self.render_graphql_ide(request)
                    raise RequestError(400, "No GraphQL query found in the request")
                params = params_from_query_string(request.query_params, self.decode_json)
                return await self._execute(request, params, media_type, _OVER_GET)
            raise RequestError(405, "GraphQL over HTTP takes GET and POST", headers=_METHODS)
        except RequestError as refused:
            return refusal(refused, media_type)
        except ClientDisconnect:  # gone before its body arrived: nobody to answer, nothing done
            return Response(status_code=400)

    async def _execute(
        self, request: Request, params: Params, media_type: str, allowed: frozenset[OperationType]
    ) -> Response:
        query, variables, operation_name, _extensions = params
        context = await self.get_context(request, Response())
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=allowed,
            )
        except CannotGetOperationTypeError as exc:
            raise RequestError(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            # GraphQL over HTTP: a mutation over GET is 405; a subscription is for WebSockets
            status = 405 if request.method == "GET" else 400
            raise RequestError(
                status, exc.as_http_error_reason(request.method), headers=_METHODS if status == 405 else None
            ) from exc
        return answer(result, media_type)

    async def reject_websocket(self, request: WebSocket) -> WebSocket:
        """A handshake from a page of another origin: 403, as JSON with a code where the server
        can send a body with its refusal (ASGI's websocket.http.response)."""
        if "websocket.http.response" not in request.scope.get("extensions", {}):
            await super().reject_websocket(request)
            return request
        await request.send_denial_response(
            refusal(RequestError(403, "WebSocket connections from this origin are not allowed", "FORBIDDEN"))
        )
        return request

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
            request_id=_request_id_of(request) or self.request_ids.next(),
            ops=self.ops,
            broker=self.broker,
        )
        try:
            context._principal = principal_from_header(self.settings, request.headers.get("authorization"))
        except Unauthenticated as exc:
            context._auth_error = exc
        return context


def _pool_status(db: Database) -> Callable[[], tuple[int, int] | None]:
    """(connections in use, connections open) of the database's pool, when it can tell."""
    pool: Any = db.engine.pool

    def status() -> tuple[int, int] | None:
        try:
            in_use = int(pool.checkedout())
            return in_use, in_use + int(pool.checkedin())
        except (AttributeError, TypeError):  # a pool without counts (e.g. NullPool)
            return None

    return status


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    settings.check_safe()
    observability.configure_logging(settings.log_level, settings.log_format)
    db = Database(settings)
    ops = OpsRuntime(settings, db)
    graphql = GraphQLApp(settings, db, ops)
    rest = create_rest_app(settings, db, ops, graphql.broker, graphql.request_ids)
    # live analytics: folds new raw records into today's counters, off the request path
    deriver = LiveDeriver(
        db,
        settings.quiz_pass_threshold,
        settings.live_derive_interval,
        lambda _: graphql.broker.publish(KPIS_TOPIC),
    )
    observability.register_analytics_lag(latest_lag_seconds)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            latency = await db.ping()
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": db.dialect, "latencyMs": round(latency, 2)})

    gauges = observability.Gauges(_pool_status(db), graphql.broker.open_subscriptions)
    db.writer.on_commit = observability.writer_committed
    db.writer.on_failure = observability.writer_failed

    async def metrics(request: Request) -> Response:
        refusal = observability.metrics_refusal(
            settings.metrics_token, settings.is_production, request.headers.get("authorization")
        )
        if refusal is not None:
            status, message = refusal
            code = "UNAUTHENTICATED" if status == 401 else "NOT_FOUND"
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)
        gauges.sample()
        body, content_type = observability.exposition()
        return Response(body, headers={"Content-Type": content_type})

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
        # With several workers each samples its gauges, so that a scrape of any one sees them all.
        sampler = (
            asyncio.create_task(gauges.sample_every(1.0), name="metrics-gauges")
            if observability.MULTIPROCESS
            else None
        )
        yield
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await deriver.stop()
        observability.process_stopped()
        await db.dispose()

    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/graphql", graphql),  # any method: the view answers 405 itself, as JSON
        WebSocketRoute("/graphql", graphql),
        # the specification's REST paths, on the same services (rest/)
        rest_mount(rest),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(observability.RequestTelemetry),
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, live_limit=live_body_limit(ops)),
            # the engines' REST log POSTs, answered here, before the router (rest.fastlane)
            Middleware(FastLane, api=rest),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.ops = ops
    app.state.deriver = deriver  # deriver.lag_seconds: its latest COMMIT-to-counters lag
    return app
