"""What every REST call carries: the caller, its request id, and the ops limits charged on it.

``caller(roles)`` is the REST twin of the GraphQL field permission (``graphql_schema.permissions``):
the same role sets of ``app.policy``, the same UNAUTHENTICATED / FORBIDDEN. It also charges an
engine's call against ``aiCallsPerMinute`` (one call is one operation) and ``maxConcurrentSessions``
through the same admission the GraphQL guard uses (``OpsRuntime.coordination``), and times the call
for diagnostics under its route (``GET /operator/ops/limits``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.types import Scope

from app import observability
from app.auth import Principal, Role, principal_from_header
from app.coordination.verdicts import Lease
from app.errors import DomainError, Forbidden
from app.ids import UniqueIds
from app.policy import Roles
from app.pubsub import Broker
from app.services.ops.enforcement import FALLBACK_LIMITS
from app.services.ops.state import OpsRuntime
from app.settings import Settings
from app.validation import is_id
from persistence.db import Database

bearer = HTTPBearer(auto_error=False, description="A JWT (HS256) with sub, role and the role's scope ids.")


@dataclass(frozen=True, slots=True)
class Services:
    """The app's shared parts, the same objects the GraphQL context holds."""

    settings: Settings
    db: Database
    ops: OpsRuntime
    broker: Broker
    request_ids: UniqueIds


@dataclass(frozen=True, slots=True)
class Call:
    principal: Principal
    request_id: str
    settings: Settings
    db: Database
    ops: OpsRuntime
    broker: Broker


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@dataclass(slots=True)
class Metered:
    """An admitted call's bookkeeping: its lease (engines) and its timing for diagnostics."""

    ops: OpsRuntime
    endpoint: str
    lease: Lease | None
    started: float


class HeaderLookup(Protocol):
    """What ``begin`` reads of a request's headers (Starlette's ``Headers``, or the fast lane's)."""

    def get(self, name: str, /) -> str | None: ...


async def begin(
    services: Services, headers: HeaderLookup, roles: Roles, endpoint: str, scope: Scope
) -> tuple[Call, Metered]:
    """Authenticate, authorise, and charge an engine's call as one operation: what every REST
    call does first (the FastAPI dependency below, and ``rest.fastlane`` for the log POSTs)."""
    principal = principal_from_header(services.settings, headers.get("authorization"))
    if principal.role not in roles:
        raise Forbidden(f"role {principal.role.value} may not do this")
    call = Call(
        principal,
        _request_id(scope, headers, services),
        services.settings,
        services.db,
        services.ops,
        services.broker,
    )
    ops = services.ops
    lease = None
    if principal.role is Role.ENGINE:
        snapshot = ops.peek()
        limits = snapshot.limits if snapshot is not None else FALLBACK_LIMITS
        lease = await ops.coordination.admit(
            principal.sub, 1, limits.ai_calls_per_minute, limits.max_concurrent_sessions
        )
    return call, Metered(ops, endpoint, lease, time.perf_counter())


async def end(metered: Metered, error: BaseException | None) -> None:
    """Release the lease and time the call (a domain error is the client's unless 5xx)."""
    elapsed_ms = (time.perf_counter() - metered.started) * 1000
    server_error = error is not None and not _clients(error)
    metered.ops.metrics.record(
        metered.endpoint,
        elapsed_ms,
        server_error=server_error,
        client_error=error is not None,
        timed_out=False,
    )
    if metered.lease is not None:
        await metered.ops.coordination.release(metered.lease)


def _request_id(scope: Scope, headers: HeaderLookup, services: Services) -> str:
    """The id the request telemetry gave the request (echoed as X-Request-Id and logged), so
    that what the call audits names the same request; without it, the caller's or a new one."""
    record = observability.record_of(scope)
    if record is not None:
        return record.request_id
    header = headers.get("x-request-id")
    return header if header is not None and is_id(header) else services.request_ids.next()


def _clients(error: BaseException) -> bool:
    """The client's mistake (4xx), not the server's."""
    if isinstance(error, DomainError):
        return error.http_status < 500
    return isinstance(error, RequestValidationError | ValidationError)


def caller(roles: Roles) -> Callable[..., Any]:
    """A dependency: the authenticated caller holding one of ``roles``, admitted by the limits."""

    async def dependency(
        request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> AsyncIterator[Call]:
        endpoint = f"{request.method} {request.scope['route'].path}"
        call, metered = await begin(_services(request), request.headers, roles, endpoint, request.scope)
        try:
            yield call
        except BaseException as error:
            await end(metered, error)
            raise
        await end(metered, None)

    dependency.roles = roles  # type: ignore[attr-defined]  # for the OpenAPI document's x-roles
    return dependency
