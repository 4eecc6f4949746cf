"""The console command as a new user runs it: a real uvicorn on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from app.cli import main as cli_main
from app.demo import demo_users
from tests.conftest import TEST_SECRET
from tests.live import live_server


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    with live_server(database_url, "--demo") as base:
        yield base


def test_token_command_prints_a_working_token(capsys, monkeypatch):
    monkeypatch.setenv("TRAINER_JWT_SECRET", TEST_SECRET)
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        assert cli_main(["token", "--role", "branch", "--branch-id", "b_01", "--sub", "op-1"]) == 0
    finally:
        get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2


def test_serve_refuses_several_workers_on_sqlite(capsys, monkeypatch, tmp_path):
    """One SQLite file has one writer, and limits would be counted per process: refused at start."""
    from app.settings import get_settings

    # given
    database = tmp_path / "one.db"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TRAINER_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    get_settings.cache_clear()
    # when
    try:
        code = cli_main(["serve", "--workers", "2"])
    finally:
        get_settings.cache_clear()
    # then: a clear message, and nothing was started or migrated
    assert code == 2
    message = capsys.readouterr().err
    assert "--workers 2 refused" in message and "TRAINER_DATABASE_URL=postgresql://" in message
    assert not database.exists()


def test_serve_refuses_several_workers_that_would_count_limits_alone(capsys, monkeypatch):
    """On PostgreSQL, TRAINER_COORDINATION=memory says "one process": several are refused."""
    from app.settings import get_settings

    # given
    monkeypatch.setenv("TRAINER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never")
    monkeypatch.setenv("TRAINER_COORDINATION", "memory")
    get_settings.cache_clear()
    # when
    try:
        code = cli_main(["serve", "--workers", "3"])
    finally:
        get_settings.cache_clear()
    # then
    assert code == 2
    assert "TRAINER_COORDINATION=memory" in capsys.readouterr().err


def test_serve_starts_graphiql_graphql_and_subscriptions(server):
    # given: a token from the CLI, as the server's banner says
    token = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "--role", "branch", "--branch-id", "b_seoul_01"],
        env=os.environ | {"TRAINER_JWT_SECRET": TEST_SECRET},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # when
    page = httpx.get(f"{server}/graphql", headers={"accept": "text/html"})
    body = httpx.post(
        f"{server}/graphql",
        json={"query": "{ me { role branchId } users { nodes { userId } } }"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    # then
    assert page.status_code == 200 and "GraphiQL" in page.text
    assert body["data"]["me"] == {"role": "BRANCH", "branchId": "b_seoul_01"}
    seoul = [u.user_id for u in demo_users() if u.scope["branchId"] == "b_seoul_01"]
    assert [n["userId"] for n in body["data"]["users"]["nodes"]] == sorted(seoul)  # demo data


async def test_subscriptions_protocol_is_enabled(server):
    url = server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await ws.recv())
    assert ack["type"] == "connection_ack"
