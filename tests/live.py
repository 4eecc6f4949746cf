"""Real servers for tests that need a socket: `trainer-console serve` on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import IO, Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from tests.conftest import TEST_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(database_url: str, *args: str, **env: str) -> Iterator[str]:
    """Start the console command on a free port; yields its base URL once /readyz answers."""
    with live_process(database_url, *args, **env) as (base, _process):
        yield base


@contextmanager
def live_process(database_url: str, *args: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The same, with the process, for tests that kill it."""
    port = free_port()
    environment = os.environ | {"TRAINER_DATABASE_URL": database_url, "TRAINER_JWT_SECRET": TEST_SECRET} | env
    environment.pop("DATABASE_URL", None)
    # a file, not a pipe: a server that logs a lot under load must never block on a full pipe
    output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {_read(output)}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("server did not become ready in 30 s")
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=10)
        print(_read(output))
        output.close()


def _read(output: IO[str]) -> str:
    output.seek(0)
    return output.read()


@asynccontextmanager
async def graphql_ws(base: str, token: str, query: str, variables: Any) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection to a live server, authenticated in connection_init,
    with one subscription (id "1") started."""
    url = base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        yield ws
