"""The engine limits of several workers sharing one store (app.coordination), in process: two
apps on one database and one Redis prefix, an unreachable Redis, and leases that expire."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.auth import Role, issue_token
from app.coordination import Coordination
from app.coordination.postgres_store import PostgresStore
from app.coordination.redis_store import RedisStore
from app.errors import RateLimited
from tests.conftest import error_codes, make_settings
from tests.live import free_port
from tests.private_servers import private_redis

REDIS_URL = os.environ.get("TRAINER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UPDATE_LIMITS = "mutation($input: UpdateLimitsInput!) { updateLimits(input: $input) { aiCallsPerMinute } }"
LIMITS = "{ limits { aiCallsPerMinute } }"
HEALTH = "{ health { status coordination { backend status limitsShared liveUpdatesShared lastError } } }"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the machine's Redis, deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    client = aioredis.Redis.from_url(REDIS_URL)
    yield prefix
    async for key in client.scan_iter(f"{prefix}:*"):
        await client.delete(key)
    await client.aclose()


async def post(http: Any, query: str, token: str, variables: Any = None) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_two_workers_on_one_redis_share_one_budget(client_with, database_url, redis_prefix):
    # given: two workers on one database and one Redis prefix, 3 root fields a minute
    first = await client_with(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    second = await client_with(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    settings = make_settings(database_url)
    admin = issue_token(settings, sub="admin-test", role=Role.ADMIN)
    engine = issue_token(settings, sub="quiz-engine", role=Role.ENGINE)
    assert "errors" not in await post(first, UPDATE_LIMITS, admin, {"input": {"aiCallsPerMinute": 3}})
    for _ in range(100):  # the second worker hears of the change (pushed, or its next poll)
        if (await post(second, LIMITS, admin))["data"]["limits"]["aiCallsPerMinute"] == 3:
            break
        await asyncio.sleep(0.02)
    # when: two operations through each
    bodies = [await post(http, LIMITS, engine) for http in (first, second, first, second)]
    # then: three in all, not three per worker
    assert [error_codes(b) for b in bodies] == [[], [], [], ["RATE_LIMITED"]]
    assert bodies[3]["errors"][0]["extensions"]["retryAfterSeconds"] == 20


async def test_an_unreachable_redis_degrades_health_and_each_worker_counts_alone(client_with, database_url):
    # given: a worker whose Redis does not answer
    http = await client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0", coordination_timeout_seconds=0.2)
    settings = make_settings(database_url)
    admin = issue_token(settings, sub="admin-test", role=Role.ADMIN)
    engine = issue_token(settings, sub="quiz-engine", role=Role.ENGINE)
    assert "errors" not in await post(http, UPDATE_LIMITS, admin, {"input": {"aiCallsPerMinute": 2}})
    # when
    bodies = [await post(http, LIMITS, engine) for _ in range(3)]
    health = (await post(http, HEALTH, admin))["data"]["health"]
    # then: served and limited in the process, and health says so
    assert [error_codes(b) for b in bodies] == [[], [], ["RATE_LIMITED"]]
    assert health["status"] == "degraded"
    coordination = health["coordination"]
    assert coordination["backend"] == "redis" and coordination["status"] == "degraded"
    assert coordination["limitsShared"] is False and coordination["liveUpdatesShared"] is False
    assert "ConnectionError" in coordination["lastError"] or "Timeout" in coordination["lastError"]


@pytest.fixture(params=["redis", "postgres"])
async def stores(request, database_url, redis_prefix) -> AsyncIterator[Any]:
    """make() -> a store of the kind; PostgreSQL's only when the run's database is PostgreSQL."""
    if request.param == "postgres" and not database_url.startswith("postgresql"):
        pytest.skip("the PostgreSQL store is tested in the PostgreSQL run (DATABASE_URL=postgresql://...)")
    made: list[Any] = []

    def make() -> Any:
        store = (
            RedisStore(REDIS_URL, redis_prefix, 1.0)
            if request.param == "redis"
            else PostgresStore(database_url, 1.0)
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_a_lease_its_process_stops_renewing_expires(stores):
    # given: a process holding the engine's one slot, with half-second leases
    holder = Coordination(stores(), lease_seconds=0.5)
    other = Coordination(stores(), lease_seconds=0.5)
    await holder.admit("engine-1", 1, 100, 1)
    with pytest.raises(RateLimited):
        await other.admit("engine-1", 1, 100, 1)
    # when: it stops renewing, as a killed process would (no release)
    await holder.close()
    await asyncio.sleep(0.7)
    # then: the slot is free again
    lease = await other.admit("engine-1", 1, 100, 1)
    await other.release(lease)
    assert await other.in_flight("engine-1") == 0


async def test_a_live_process_keeps_its_leases_past_their_time(stores):
    # given: a slot held by a running process (its renewal runs every third of the lease)
    holder = Coordination(stores(), lease_seconds=0.6)
    other = Coordination(stores(), lease_seconds=0.6)
    holder.start()
    lease = await holder.admit("engine-1", 1, 100, 1)
    # when
    await asyncio.sleep(1.2)
    # then: still held; free once released
    assert await other.in_flight("engine-1") == 1
    await holder.release(lease)
    assert await other.in_flight("engine-1") == 0
    await holder.close()


async def test_the_shared_bucket_refuses_whole_and_says_when_it_fits(stores):
    # given
    first, second = Coordination(stores()), Coordination(stores())
    await first.release(await first.admit("engine-2", 4, 6, 10))
    # when: 2 of 6 left, 3 asked through the other process; then 7 asked
    with pytest.raises(RateLimited) as short:
        await second.admit("engine-2", 3, 6, 10)
    with pytest.raises(RateLimited) as never:
        await second.admit("engine-2", 7, 6, 10)
    # then: one more field refills in 10 s; 7 never fits in 6
    assert short.value.details["retryAfterSeconds"] == 10
    assert never.value.details == {"retryAfterSeconds": None, "maxRootFields": 6}


async def test_checks_made_at_once_admit_exactly_the_cap(stores):
    # given: two processes, 3 operations of the engine in flight at most
    first, second = Coordination(stores()), Coordination(stores())
    # when: ten checks at the same moment (the Redis store sends a worker's in one pipeline)
    outcomes = await asyncio.gather(
        *(process.admit("engine-3", 1, 100, 3) for process in [first, second] * 5), return_exceptions=True
    )
    # then: exactly three admitted, the others refused as busy
    leases = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(leases) == 3 and len(refused) == 7
    assert all("maxConcurrentSessions" in str(r) for r in refused)
    assert await second.in_flight("engine-3") == 3
    await asyncio.gather(*(first.release(lease) for lease in leases))
    assert await second.in_flight("engine-3") == 0


async def test_a_release_and_a_check_at_once_free_the_slot_first(redis_prefix):
    # given: the engine's one slot held
    process = Coordination(RedisStore(REDIS_URL, redis_prefix, 1.0))
    held = await process.admit("engine-4", 1, 100, 1)
    try:
        # when: its release and the next check in the same turn of the event loop
        released, lease = await asyncio.gather(process.release(held), process.admit("engine-4", 1, 100, 1))
        # then: the release rode on the check, before it counted
        assert released is None
        assert await process.in_flight("engine-4") == 1
        await process.release(lease)
        assert await process.in_flight("engine-4") == 0
    finally:
        await process.close()


async def test_checks_go_on_after_redis_forgets_its_scripts(redis_prefix):
    # given: a private Redis (SCRIPT FLUSH would touch every user of the shared one)
    with private_redis() as server:
        process = Coordination(RedisStore(server.url, redis_prefix, 1.0))
        try:
            await process.release(await process.admit("engine-5", 1, 100, 5))
            flush = aioredis.Redis.from_url(server.url)
            await flush.script_flush()
            await flush.aclose()
            # when: several checks at once, all meeting NOSCRIPT
            leases = await asyncio.gather(*(process.admit("engine-5", 1, 100, 5) for _ in range(4)))
            # then: loaded again and answered, still shared
            assert len({lease.token for lease in leases}) == 4 and all(lease.shared for lease in leases)
            assert await process.in_flight("engine-5") == 4
            assert (await process.status()).limits_shared is True
        finally:
            await process.close()


class FailingSends:
    """A real store whose first ``failures`` publishes fail, as a stale connection's do."""

    def __init__(self, store: Any, failures: int) -> None:
        self._store, self.failures = store, failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def notify(self, payload: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Connection reset by peer")
        await self._store.notify(payload)


async def test_a_failed_publish_is_sent_again_not_dropped(stores):
    # given: a listening process, and a publisher whose next two publishes fail
    listener, flaky = stores(), FailingSends(stores(), failures=2)
    receiver, sender = Coordination(listener), Coordination(flaky)
    heard: asyncio.Queue[str] = asyncio.Queue()
    receiver.subscribe(heard.put_nowait)
    await receiver.started(within_seconds=5)
    await sender.started(within_seconds=5)
    try:
        # when
        sender.publish("performance:u_01")
        # then: it arrives once the store takes it, and the sender says it was degraded meanwhile
        await asyncio.sleep(0.1)
        assert (await sender.status()).live_updates_shared is False
        assert await asyncio.wait_for(heard.get(), 5) == "performance:u_01"
        assert flaky.failures == 0 and heard.empty()
        for _ in range(50):  # (the listener may hear it before the sender's call returns)
            if (await sender.status()).live_updates_shared:
                break
            await asyncio.sleep(0.02)
        assert (await sender.status()).live_updates_shared is True
    finally:
        await receiver.close()
        await sender.close()
