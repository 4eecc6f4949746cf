"""Fixtures of the tests with several server processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.scale import REDIS_URL


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest, database_url: str) -> Iterator[dict[str, str]]:
    """The environment of the servers: a Redis key prefix of their own, or no Redis."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several server processes need PostgreSQL (SQLite refuses --workers > 1)")
    if request.param == "postgres":
        yield {"TRAINER_COORDINATION": "postgres"}
        return
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield {"TRAINER_REDIS_URL": REDIS_URL, "TRAINER_REDIS_PREFIX": prefix}
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
