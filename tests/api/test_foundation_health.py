"""Liveness and readiness probes."""

from __future__ import annotations

import gc

import pytest


async def test_healthz_needs_no_token(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_database(client, settings):
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == ("sqlite" if settings.is_sqlite else "postgresql")


@pytest.mark.parametrize(
    "unreachable",
    [
        "sqlite+aiosqlite:////nonexistent-dir/for/sure/trainer.db",
        "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
    ],
)
async def test_readyz_is_503_when_the_database_is_gone(client_with, unreachable):
    # given
    app_without_db = await client_with(database_url=unreachable)
    # when
    response = await app_without_db.get("/readyz")
    live = await app_without_db.get("/healthz")
    # then
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert live.status_code == 200
    # a failed aiosqlite connect leaves its worker thread to the collector, which then answers a
    # future on this test's event loop: collect while the loop still runs, not in a later test
    gc.collect()


async def test_readyz_is_503_after_the_database_is_dropped(client, dbs, database_url):
    if dbs.kind == "sqlite":
        pytest.skip("SQLite recreates a deleted file on connect; the unreachable-path test covers SQLite")
    # given: a ready app
    assert (await client.get("/readyz")).status_code == 200
    # when: its database disappears
    await dbs.drop(database_url)
    # then
    assert (await client.get("/readyz")).status_code == 503
