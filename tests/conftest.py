"""Fixtures: a real database per test (SQLite by default, PostgreSQL when DATABASE_URL
points at it), the app, an HTTP client over ASGI and helpers to call GraphQL."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.auth import Role, issue_token
from app.main import create_app
from app.settings import Settings
from persistence.db import Database
from tests.dbs import PostgresDatabases, SqliteDatabases, postgres_unavailable_reason

TEST_SECRET = "test-secret-0123456789-0123456789-abcdef"
TEST_AUDIT_SECRET = "test-audit-secret-0123456789-0123456789"
RUN_ON = "postgresql" if (os.environ.get("DATABASE_URL") or "").startswith("postgres") else "sqlite"
REQUIRE_POSTGRES = os.environ.get("TRAINER_REQUIRE_POSTGRES") == "1"


def _postgres_or_skip() -> None:
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"TRAINER_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_dbs() -> Iterator[SqliteDatabases]:
    dbs = SqliteDatabases(Path(tempfile.mkdtemp(prefix="trainer-test-")))
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def postgres_dbs() -> Iterator[PostgresDatabases]:
    _postgres_or_skip()
    dbs = PostgresDatabases()
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def dbs(request: pytest.FixtureRequest) -> SqliteDatabases | PostgresDatabases:
    """The databases the suite runs on: PostgreSQL when DATABASE_URL says so."""
    name = "postgres_dbs" if RUN_ON == "postgresql" else "sqlite_dbs"
    result: SqliteDatabases | PostgresDatabases = request.getfixturevalue(name)
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def each_dbs(request: pytest.FixtureRequest) -> SqliteDatabases | PostgresDatabases:
    """For tests that must show a behaviour on both databases in one run."""
    name = "postgres_dbs" if request.param == "postgresql" else "sqlite_dbs"
    result: SqliteDatabases | PostgresDatabases = request.getfixturevalue(name)
    return result


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"env": "test", "jwt_secret": TEST_SECRET, "audit_secret": TEST_AUDIT_SECRET}
    values |= overrides
    return Settings(database_url=database_url, **values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to build the app with other settings."""
    return {}


@pytest.fixture
async def database_url(dbs: SqliteDatabases | PostgresDatabases) -> AsyncIterator[str]:
    url = await dbs.fresh()
    yield url
    await dbs.drop(url)


@pytest.fixture
def settings(database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    return make_settings(database_url, **settings_overrides)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The persistence layer alone (engine, sessions, group-commit writer), no app around it."""
    database = Database(Settings(database_url=database_url))
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    yield application
    await application.state.db.dispose()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


TokenFactory = Callable[..., str]


@pytest.fixture
def token(settings: Settings) -> TokenFactory:
    """token("branch", branch_id="b_01") -> a signed JWT for that principal."""

    def make(role: str, sub: str | None = None, ttl_seconds: int = 600, **scope: str) -> str:
        return issue_token(
            settings, sub=sub or f"{role}-test", role=Role(role), ttl_seconds=ttl_seconds, **scope
        )

    return make


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, token: TokenFactory) -> None:
        self.http = http
        self.token = token

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, bearer: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> dict[str, Any]:
        """Run an operation; ``as_`` is a token (see the ``token`` fixture) or None."""
        response = await self.raw(query, variables, as_)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient, token: TokenFactory) -> GraphQLClient:
    return GraphQLClient(client, token)


@pytest.fixture
def admin(token: TokenFactory) -> str:
    return token("admin")


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


class StatementCounter:
    """Counts the SQL statements the app sends: exact, unlike timings."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def sql_statements(app: Starlette) -> Iterator[StatementCounter]:
    from sqlalchemy import event

    counter = StatementCounter()
    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)


@pytest.fixture
async def client_with(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """client_with(**settings) -> an HTTP client for an app built with other settings."""
    apps: list[Starlette] = []
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> httpx.AsyncClient:
        application = create_app(make_settings(overrides.pop("database_url", database_url), **overrides))
        apps.append(application)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()
    for application in apps:
        await application.state.db.dispose()


@pytest.fixture
async def rest(client: httpx.AsyncClient) -> Any:
    """The REST transport (``/operator/...``), every answer checked against the OpenAPI document."""
    from tests.rest_client import rest_client

    return await rest_client(client)
