"""Which failures mean "the database is not there right now" (down, restarting, unreachable).

They are not the client's mistake and not a bug either: the client gets a clear, retryable
error at once instead of a masked one, and the log gets one line instead of a traceback.
"""

from __future__ import annotations

import errno
import socket

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted
    asyncpg.PostgresConnectionError,  # the connection could not be made, or was lost
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,  # terminated by a fast or immediate shutdown
    PoolTimeout,  # no pooled connection came free in time
    TimeoutError,  # connecting took longer than its timeout
    socket.gaierror,  # the host name does not resolve
)
_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def database_unreachable(error: BaseException | None) -> bool:
    """True when ``error``, or anything that led to it, says the database could not be reached."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, _UNREACHABLE):
            return True
        if isinstance(error, DBAPIError):
            if error.connection_invalidated:
                return True
            orig = error.orig
            if isinstance(orig, BaseException) and database_unreachable(orig):
                return True
        if isinstance(error, OSError) and error.errno in _NO_ROUTE:
            return True
        error = error.__cause__ or error.__context__
    return False


# PostgreSQL's text and jsonb cannot hold a NUL: 22021 (a NUL in a text parameter) and 22P05
# (a \u0000 in jsonb). The client's value, not our bug: refused as a schema mismatch.
_NOT_STORABLE = {"22021", "22P05"}


def text_not_storable(error: BaseException | None) -> bool:
    """True when ``error`` (or what it wraps) is PostgreSQL refusing a NUL in a value."""
    if isinstance(error, DBAPIError):
        error = error.orig if isinstance(error.orig, BaseException) else None
    return getattr(error, "sqlstate", None) in _NOT_STORABLE
