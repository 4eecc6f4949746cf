"""`serve --workers 2`: /metrics, answered by either worker, counts the requests of both
(prometheus-client's multiprocess mode, set up by the CLI), and each request is one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.auth import Role, issue_token
from tests.conftest import TEST_SECRET, make_settings
from tests.live import free_port, graphql_ws, live_server
from tests.upm_fixture import LOG_QUIZ, QUIZ, with_context

NAMED = "query WorkersProbe { __typename me { sub } }"
REQUESTS = 40
SUBSCRIBE = "subscription($u: String!) { performanceUpdated(userId: $u) { quiz { totalQuizzes } } }"


@pytest.fixture
def two_workers(database_url: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL (SQLite refuses --workers > 1)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="trainer-metrics-test-") as directory:
        env = os.environ | {
            "TRAINER_DATABASE_URL": database_url,
            "TRAINER_JWT_SECRET": TEST_SECRET,
            "TRAINER_COORDINATION": "postgres",
            "PROMETHEUS_MULTIPROC_DIR": directory,
        }
        env.pop("DATABASE_URL", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, "server exited"
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "not ready in 60 s"
                time.sleep(0.2)
            yield base, process
        finally:
            process.terminate()
            process.wait(timeout=20)


def _count(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "trainer_graphql_requests_total"
        and sample.labels["operation_name"] == "WorkersProbe"
    )


async def test_metrics_add_up_every_workers_requests(two_workers, token):
    # given
    base, process = two_workers
    bearer = token("admin", sub="probe")

    # when: requests on separate connections, so both workers get some
    async def one(n: int) -> str:
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post(
                "/graphql",
                json={"query": NAMED},
                headers={"Authorization": f"Bearer {bearer}", "X-Request-Id": f"probe-{n}"},
            )
            assert response.status_code == 200 and "errors" not in response.json()
            return response.headers["x-request-id"]

    echoed = await asyncio.gather(*(one(n) for n in range(REQUESTS)))
    async with httpx.AsyncClient(base_url=base) as http:
        scrapes = [(await http.get("/metrics", timeout=5)).text for _ in range(4)]
    process.terminate()
    _, stderr = process.communicate(timeout=20)
    # then: every scrape, whichever worker answered it, counts all the requests
    assert echoed == [f"probe-{n}" for n in range(REQUESTS)]
    assert [_count(text) for text in scrapes] == [REQUESTS] * 4
    # and each request is one JSON line, from one of two worker processes
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("logger") == "trainer_console.requests"]
    assert sorted(line["requestId"] for line in requests if line["path"] == "/graphql") == sorted(echoed)


def _gauge(text: str, name: str) -> float:
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def test_open_subscriptions_are_counted_while_open(database_url):
    # given: a live server and a dashboard subscribed to a user's profile
    with live_server(database_url) as base:
        settings = make_settings(database_url)
        engine = issue_token(settings, sub="quiz-engine", role=Role.ENGINE)
        operator = issue_token(settings, sub="op", role=Role.BRANCH, branch_id="b_seoul")
        async with httpx.AsyncClient(base_url=base) as http:
            body = await http.post(
                "/graphql",
                json={"query": LOG_QUIZ, "variables": {"input": with_context(QUIZ)}},
                headers={"Authorization": f"Bearer {engine}"},
            )
            assert "errors" not in body.json()
            # when
            async with graphql_ws(base, operator, SUBSCRIBE, {"u": "u_01"}) as ws:
                json.loads(await asyncio.wait_for(ws.recv(), 10))  # the first profile: it is open
                while_open = (await http.get("/metrics")).text
            after = (await http.get("/metrics")).text
            for _ in range(50):  # the server notices the closed connection shortly after
                if _gauge(after, "trainer_subscriptions_open") == 0:
                    break
                await asyncio.sleep(0.1)
                after = (await http.get("/metrics")).text
    # then
    assert _gauge(while_open, "trainer_subscriptions_open") == 1
    assert _gauge(after, "trainer_subscriptions_open") == 0
