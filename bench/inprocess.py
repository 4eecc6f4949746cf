"""Requests through the Starlette app in this process (ASGI, no sockets), and counting their
instructions under callgrind: what ``bench.micro`` and ``bench.guard`` share."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


async def post(app: Any, body: bytes, token: str, path: str = "/graphql") -> bytes:
    """POST ``path`` and return the answer's body; any HTTP or GraphQL error ends the run."""
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + token.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    answer: bytes = b"".join(message.get("body", b"") for message in sent[1:])
    if sent[0]["status"] != 200 or b'"errors"' in answer:
        raise SystemExit(f"request failed: {sent}")
    return answer


def _callgrind(*args: str) -> str:
    """Ask the callgrind this process runs under (valgrind's tool) to do something."""
    command = ["callgrind_control", *args, str(os.getpid())]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


class Counted:
    instructions = 0


@contextmanager
def instructions() -> Iterator[Counted]:
    """Count the instructions of every thread (aiosqlite runs SQLite in its own) inside the
    block; the process must run under ``valgrind --tool=callgrind --instr-atstart=no``."""
    counted = Counted()
    _callgrind("--instr=on")
    try:
        yield counted
        per_thread = re.findall(r"Th\s+\d+\s+([\d,]+)", _callgrind("-e"))
        counted.instructions = sum(int(n.replace(",", "")) for n in per_thread)
    finally:
        _callgrind("--instr=off")
