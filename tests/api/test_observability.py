"""/metrics (Prometheus text format) and the JSON request log lines, through the public API."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import observability
from app.logformat import JsonFormatter
from app.services import directory
from tests.conftest import error_codes
from tests.org import REGISTER_USER, USERS, register_input, register_org
from tests.upm_fixture import LEARNING, LOG_LEARNING, LOG_MISSION, MISSION, with_context

NAMED_USERS = "query DashboardUsers($first: Int!) { users(first: $first) { nodes { userId } } }"
ANONYMOUS_ME = "{ me { sub } }"
UPDATE_LIMITS = "mutation($input: UpdateLimitsInput!) { updateLimits(input: $input) { aiCallsPerMinute } }"
LIMITS = "{ limits { aiCallsPerMinute } }"
METRICS_TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
async def org(gql, admin):
    await register_org(gql, admin)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: Any, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    text: str = response.text
    return text


class LogLines:
    """The lines the app logs while the test runs, formatted as in production and parsed."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def of(self, logger: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in parsed if line["logger"] == logger]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    lines = LogLines()
    handler = logging.StreamHandler(lines.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)


async def test_operations_are_counted_and_timed_by_name_and_root_field_never_by_text(client, gql, admin, org):
    # given
    labels = {"operation_type": "query", "operation_name": "DashboardUsers", "root_fields": "users"}
    before = await scrape(client)
    # when
    for _ in range(3):
        assert "errors" not in await gql(NAMED_USERS, {"first": 2}, as_=admin)
    after = await scrape(client)
    # then
    ok = {**labels, "outcome": "ok"}
    assert value(after, "trainer_graphql_requests_total", **ok) - value(
        before, "trainer_graphql_requests_total", **ok
    ) == pytest.approx(3)
    count = "trainer_graphql_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == pytest.approx(3)
    assert "nodes" not in after and "first:" not in after  # no query text in any label


async def test_errors_are_counted_by_contract_code(client, gql, token):
    # given
    before = await scrape(client)
    # when: an engine may not list users, and a request without a token is unauthenticated
    forbidden = await gql(NAMED_USERS, {"first": 2}, as_=token("engine"))
    unauthenticated = await gql(ANONYMOUS_ME, {})
    after = await scrape(client)
    # then
    assert error_codes(forbidden) == ["FORBIDDEN"]
    assert error_codes(unauthenticated) == ["UNAUTHENTICATED"]
    for code in ("FORBIDDEN", "UNAUTHENTICATED"):
        delta = value(after, "trainer_graphql_errors_total", code=code) - value(
            before, "trainer_graphql_errors_total", code=code
        )
        assert delta == pytest.approx(1), code
    failed = {"operation_type": "query", "operation_name": "DashboardUsers", "root_fields": "users"}
    assert value(after, "trainer_graphql_requests_total", **failed, outcome="error") >= 1


async def test_rate_limit_refusals_are_counted(client, gql, admin, token):
    # given: an engine allowed one AI call a minute
    body = await gql(UPDATE_LIMITS, {"input": {"aiCallsPerMinute": 1}}, as_=admin)
    assert "errors" not in body, body
    engine = token("engine", sub="engine-metrics")
    before = await scrape(client)
    # when
    first = await gql(LIMITS, as_=engine)
    second = await gql(LIMITS, as_=engine)
    after = await scrape(client)
    # then
    assert "errors" not in first
    assert error_codes(second) == ["RATE_LIMITED"]
    assert value(after, "trainer_rate_limit_refusals_total") - value(
        before, "trainer_rate_limit_refusals_total"
    ) == pytest.approx(1)


async def test_writer_batches_pool_and_subscriptions_are_exposed(client, gql, token):
    # given
    engine = token("engine")
    before = await scrape(client)
    # when: two UPM logs through the group-commit writer
    for payload in (LEARNING, MISSION):
        body = await gql(
            LOG_LEARNING if payload is LEARNING else LOG_MISSION, {"input": with_context(payload)}, as_=engine
        )
        assert "errors" not in body, body
    after = await scrape(client)
    # then
    batches = value(after, "trainer_writer_batch_units_count") - value(
        before, "trainer_writer_batch_units_count"
    )
    units = value(after, "trainer_writer_batch_units_sum") - value(before, "trainer_writer_batch_units_sum")
    commits = value(after, "trainer_writer_commit_seconds_count") - value(
        before, "trainer_writer_commit_seconds_count"
    )
    assert units == pytest.approx(2) and 1 <= batches <= 2 and commits == batches
    names = {name for name, _labels in samples(after)}
    assert {
        "trainer_db_pool_connections_in_use",
        "trainer_db_pool_connections_open",
        "trainer_subscriptions_open",
        "trainer_analytics_lag_seconds",
    } <= names
    assert value(after, "trainer_subscriptions_open") == 0


async def test_the_analytics_lag_comes_from_the_registered_source(client):
    # given
    observability.register_analytics_lag(lambda: 12.5)
    try:
        # when
        text = await scrape(client)
    finally:
        observability.register_analytics_lag(None)
    # then
    assert value(text, "trainer_analytics_lag_seconds") == 12.5


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": METRICS_TOKEN}])
async def test_metrics_need_the_token_when_one_is_set(client):
    # when
    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    # then
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "UNAUTHENTICATED"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200 and "trainer_graphql_requests_total" in right.text


async def test_metrics_are_off_in_production_without_a_token(client_with):
    # given
    production = {
        "env": "production",
        "jwt_secret": "p" * 40,
        "audit_secret": "a" * 40,
    }
    # when
    closed = await (await client_with(**production)).get("/metrics")
    scraped = await (await client_with(**production, metrics_token=METRICS_TOKEN)).get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    # then
    assert closed.status_code == 404 and closed.json()["error"]["code"] == "NOT_FOUND"
    assert scraped.status_code == 200


async def test_one_json_line_per_request_with_id_caller_operation_and_codes(gql, token, log_lines):
    # given
    operator = token("branch", sub="op-7", branch_id="b_seoul")
    # when
    response = await gql.http.post(
        "/graphql",
        json={"query": NAMED_USERS, "variables": {"first": 2}},
        headers={"Authorization": f"Bearer {operator}", "X-Request-Id": "req-log-1"},
    )
    refused = await gql.http.post(
        "/graphql",
        json={"query": NAMED_USERS, "variables": {"first": 2}},
        headers={"X-Request-Id": "req-log-2"},
    )
    # then: the id is echoed
    assert response.headers["x-request-id"] == "req-log-1"
    assert refused.headers["x-request-id"] == "req-log-2"
    lines = {line["requestId"]: line for line in log_lines.of("trainer_console.requests")}
    ok, failed = lines["req-log-1"], lines["req-log-2"]
    assert ok["level"] == "INFO" and ok["message"] == "request"
    assert (ok["sub"], ok["role"]) == ("op-7", "branch")
    assert (ok["operationType"], ok["operationName"], ok["rootFields"]) == (
        "query",
        "DashboardUsers",
        "users",
    )
    assert (ok["status"], ok["errorCodes"]) == (200, [])
    assert ok["durationMs"] >= 0 and ok["time"].endswith("+00:00")
    assert (failed["sub"], failed["errorCodes"]) == (None, ["UNAUTHENTICATED"])


async def test_a_server_made_request_id_is_echoed_logged_and_audited(gql, admin, log_lines):
    # when: no X-Request-Id
    response = await gql.http.post(
        "/graphql",
        json={"query": REGISTER_USER, "variables": {"input": register_input(USERS[0])}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    # then
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    audit = await gql("{ auditLog(first: 1) { edges { node { requestId } } } }", as_=admin)
    assert audit["data"]["auditLog"]["edges"][0]["node"]["requestId"] == request_id
    logged = [line["requestId"] for line in log_lines.of("trainer_console.requests")]
    assert request_id in logged


async def test_a_masked_error_is_logged_with_its_traceback_and_request_id(gql, admin, monkeypatch, log_lines):
    # given
    async def broken(*_args, **_kwargs):
        raise RuntimeError("boom in the directory")

    monkeypatch.setattr(directory, "list_users", broken)
    # when
    response = await gql.http.post(
        "/graphql",
        json={"query": NAMED_USERS, "variables": {"first": 2}},
        headers={"Authorization": f"Bearer {admin}", "X-Request-Id": "req-masked"},
    )
    # then
    assert error_codes(response.json()) == ["INTERNAL_SERVER_ERROR"]
    [error] = log_lines.of("trainer_console.errors")
    assert error["level"] == "ERROR" and error["requestId"] == "req-masked"
    assert "RuntimeError: boom in the directory" in error["traceback"]
    [request] = [
        line for line in log_lines.of("trainer_console.requests") if line["requestId"] == "req-masked"
    ]
    assert request["errorCodes"] == ["INTERNAL_SERVER_ERROR"]
