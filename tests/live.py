"""Real servers for tests that need a socket: `trainer-console serve` on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import TEST_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(database_url: str, *args: str, **env: str) -> Iterator[str]:
    """Start the console command on a free port; yields its base URL once /readyz answers."""
    port = free_port()
    environment = os.environ | {"TRAINER_DATABASE_URL": database_url, "TRAINER_JWT_SECRET": TEST_SECRET} | env
    environment.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("server did not become ready in 30 s")
        yield base
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
        print(output)
