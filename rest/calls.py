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
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import Principal, Role, principal_from_header
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


def caller(roles: Roles) -> Callable[..., Any]:
    """A dependency: the authenticated caller holding one of ``roles``, admitted by the limits."""

    async def dependency(
        request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> AsyncIterator[Call]:
        services = _services(request)
        principal = principal_from_header(services.settings, request.headers.get("authorization"))
        if principal.role not in roles:
            raise Forbidden(f"role {principal.role.value} may not do this")
        header = request.headers.get("x-request-id")
        call = Call(
            principal,
            header if header is not None and is_id(header) else services.request_ids.next(),
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
        started = time.perf_counter()
        endpoint = f"{request.method} {request.scope['route'].path}"
        try:
            yield call
        except DomainError as error:
            _record(ops, endpoint, started, server_error=error.http_status >= 500, client_error=True)
            raise
        except Exception:
            _record(ops, endpoint, started, server_error=True, client_error=True)
            raise
        else:
            _record(ops, endpoint, started, server_error=False, client_error=False)
        finally:
            if lease is not None:
                await ops.coordination.release(lease)

    return dependency


def _record(
    ops: OpsRuntime, endpoint: str, started: float, *, server_error: bool, client_error: bool
) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    ops.metrics.record(
        endpoint, elapsed_ms, server_error=server_error, client_error=client_error, timed_out=False
    )
