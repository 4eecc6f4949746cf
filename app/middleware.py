"""ASGI middleware that must run before any request body is parsed."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024


async def _reject_too_large(send: Send, limit: int, live: bool = False) -> None:
    message = (
        f"request body is larger than fileUploadLimitMb: {limit // MIB} MB ({limit} bytes)"
        if live
        else f"request body is larger than the limit of {limit} bytes"
    )
    details = {"limitBytes": limit, "limit": "fileUploadLimitMb" if live else "maxBodyBytes"}
    body = json.dumps(
        {"error": {"code": "E_SCHEMA_MISMATCH", "message": message, "details": details}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse request bodies over the limit with 413, by Content-Length or while streaming.

    The limit is the smaller of ``max_bytes`` (the deployment's ceiling) and ``live_limit()``
    (ops fileUploadLimitMb, read from the worker's settings cache, asked only for requests
    that carry a body).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        live_limit: Callable[[], Awaitable[int | None]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.live_limit = live_limit

    async def _limit(self, has_body: bool) -> tuple[int, bool]:
        if has_body and self.live_limit is not None:
            live = await self.live_limit()
            if live is not None and live < self.max_bytes:
                return live, True
        return self.max_bytes, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        limit, live = await self._limit(length not in (None, b"0") or b"transfer-encoding" in headers)
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = limit + 1
            if declared > limit:
                await _reject_too_large(send, limit, live)
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit, then replay.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reject_too_large(send, limit, live)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
