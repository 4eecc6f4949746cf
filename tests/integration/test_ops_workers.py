"""Two real server processes on one database: a change made through one is in force in the
other within a second (each worker checks ops_state.version at most every 0.5 s)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.services.upm.ruleset import DEFAULT_UPM_RULESET
from tests.conftest import TEST_SECRET, error_codes

LIMITS = "{ limits { aiCallsPerMinute } }"
UPDATE_LIMITS = "mutation { updateLimits(input: {aiCallsPerMinute: 2}) { aiCallsPerMinute } }"
FEATURES = "{ features { key enabled } }"
FLIP = 'mutation { setFeatureToggle(key: "insight_generation", enabled: false) { enabled } }'
UPLOAD = "mutation($input: UploadRulesetInput!) { uploadRuleset(input: $input) { rulesetId } }"
RELOAD = 'mutation { hotReload(type: upm, targetId: "behavior_score_v3") { active { rulesetId } } }'
ACTIVE_UPM = "{ rulesets(type: upm, activeOnly: true) { rulesetId } }"
PROPAGATION_SECONDS = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(database_url: str) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = os.environ | {"TRAINER_DATABASE_URL": database_url, "TRAINER_JWT_SECRET": TEST_SECRET}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise AssertionError("server did not become ready in 30 s")


@pytest.fixture
def two_servers(database_url: str) -> Iterator[tuple[str, str]]:
    """Started one after the other, so the second one's start-up migration is a no-op."""
    started: list[subprocess.Popen[str]] = []
    try:
        first, base_a = _start(database_url)
        started.append(first)
        second, base_b = _start(database_url)
        started.append(second)
        yield base_a, base_b
    finally:
        for process in started:
            process.terminate()
            output, _ = process.communicate(timeout=10)
            print(output)


async def call(
    http: httpx.AsyncClient, base: str, query: str, bearer: str, variables: Any = None
) -> dict[str, Any]:
    response = await http.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def seconds_until(condition, http, base, query, bearer) -> float:
    """Poll ``base`` every 20 ms; the seconds until ``condition(data)`` held."""
    started = time.monotonic()
    while time.monotonic() - started < 5:
        body = await call(http, base, query, bearer)
        if "errors" not in body and condition(body["data"]):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not seen within 5 s: last answer {body}")


async def test_settings_changed_through_one_worker_are_in_force_in_the_other_within_a_second(
    two_servers, admin, token
):
    base_a, base_b = two_servers
    engine = token("engine", sub="engine-on-b")
    async with httpx.AsyncClient(timeout=10) as http:
        # given: worker B has the settings cached
        assert (await call(http, base_b, LIMITS, admin))["data"]["limits"]["aiCallsPerMinute"] == 60
        assert {
            f["key"]: f["enabled"] for f in (await call(http, base_b, FEATURES, admin))["data"]["features"]
        }["insight_generation"]
        # when: the limit is cut through worker A
        assert "errors" not in await call(http, base_a, UPDATE_LIMITS, admin)
        # then: B sees it within a second ...
        waited = await seconds_until(
            lambda d: d["limits"]["aiCallsPerMinute"] == 2, http, base_b, LIMITS, admin
        )
        assert waited < PROPAGATION_SECONDS
        # ... and enforces it
        bodies = [await call(http, base_b, LIMITS, engine) for _ in range(3)]
        assert [error_codes(b) for b in bodies] == [[], [], ["RATE_LIMITED"]]
        # when: a toggle is flipped through A
        assert "errors" not in await call(http, base_a, FLIP, admin)
        # then
        waited = await seconds_until(
            lambda d: not {f["key"]: f["enabled"] for f in d["features"]}["insight_generation"],
            http,
            base_b,
            FEATURES,
            admin,
        )
        assert waited < PROPAGATION_SECONDS


async def test_a_hot_reload_through_one_worker_is_active_in_the_other_within_a_second(two_servers, admin):
    base_a, base_b = two_servers
    document = DEFAULT_UPM_RULESET.document() | {"version": "3"}
    async with httpx.AsyncClient(timeout=10) as http:
        # given
        assert (await call(http, base_b, ACTIVE_UPM, admin))["data"]["rulesets"][0][
            "rulesetId"
        ] == "upm_default_v1"
        upload = {"input": {"type": "upm", "rulesetId": "behavior_score_v3", "document": document}}
        assert "errors" not in await call(http, base_a, UPLOAD, admin, upload)
        # when
        assert "errors" not in await call(http, base_a, RELOAD, admin)
        # then
        waited = await seconds_until(
            lambda d: d["rulesets"] and d["rulesets"][0]["rulesetId"] == "behavior_score_v3",
            http,
            base_b,
            ACTIVE_UPM,
            admin,
        )
        assert waited < PROPAGATION_SECONDS
