"""The typed per-request context every resolver receives: settings, database, caller and DataLoaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.auth import Principal
from app.errors import Unauthenticated
from app.pubsub import Broker
from app.settings import Settings
from persistence.db import Database

if TYPE_CHECKING:
    from app.services.ops.state import OpsRuntime
    from graphql_schema.loaders import Loaders


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | None
    settings: Settings
    db: Database
    make_loaders: Callable[[], Loaders]
    request_id: str
    # The worker's ops settings cache, limiters and metrics (app.services.ops.state).
    ops: OpsRuntime
    broker: Broker
    # graphql-transport-ws connection_init payload (may carry "Authorization")
    connection_params: dict[str, object] | None = None
    _principal: Principal | None = None
    _auth_error: Unauthenticated | None = field(default=None)

    @cached_property
    def loaders(self) -> Loaders:
        """This request's DataLoaders, made on first use: most writes never load anything."""
        return self.make_loaders()

    @property
    def principal(self) -> Principal:
        """The authenticated caller; raises UNAUTHENTICATED when the token was missing or bad."""
        if self._principal is None:
            raise self._auth_error or Unauthenticated("missing Authorization: Bearer <token> header")
        return self._principal

    @property
    def caller(self) -> Principal | None:
        """The caller if authenticated, without raising (for per-operation hooks)."""
        return self._principal
