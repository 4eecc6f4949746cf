"""Limits and live updates through Redis (``TRAINER_REDIS_URL``).

The limits are two Lua scripts, so each check is atomic across every client and one round trip:
a token bucket per engine (a hash) and its in-flight leases (a sorted set scored by expiry,
read with Redis's own clock, so machines' clocks never disagree). Live updates are one pub/sub
channel. Keys and the channel start with ``TRAINER_REDIS_PREFIX``.

The checks and releases that a worker's requests make in one turn of its event loop go to Redis
as one pipeline (``_Batcher``): under load that is one round trip, one pooled connection and one
write for several requests, where redis-py's per-command overhead (pool, retry wrapper, timeout,
write) was most of what the shared limiter cost per log. Each caller still awaits its own reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from app.coordination.verdicts import Lease, Verdict

# KEYS: bucket, leases, then the lease sets of the releases; ARGV: cost, per_minute,
# max_in_flight, lease token, ttl ms, then the releases' tokens.
_ADMIT = """
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i + 3]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost, per_minute = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_in_flight, ttl = tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= max_in_flight then return {'busy', '0'} end
if cost > 0 then
  local b = redis.call('HMGET', KEYS[1], 'tokens', 'capacity', 'updated')
  local tokens, capacity, updated = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
  if tokens == nil then tokens, capacity, updated = per_minute, per_minute, now end
  if capacity ~= per_minute then tokens = math.max(0, tokens + per_minute - capacity) end
  tokens = math.min(per_minute, tokens + math.max(0, now - updated) * per_minute / 60000)
  local verdict, wait = 'ok', 0
  if cost > per_minute then verdict = 'never'
  elseif cost > tokens then verdict, wait = 'rate', (cost - tokens) * 60 / per_minute
  else tokens = tokens - cost end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'capacity', per_minute, 'updated', now)
  redis.call('PEXPIRE', KEYS[1], 120000)
  if verdict ~= 'ok' then return {verdict, tostring(wait)} end
end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[2], ttl * 2)
return {'ok', '0'}
"""

# KEYS: lease sets; ARGV: ttl ms, then the tokens. Extends only leases still held (XX).
_RENEW = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', expires, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]) * 2)
end
return #KEYS
"""

_IN_FLIGHT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


Reply = asyncio.Future[Any]


class _Batcher:
    """Sends the checks and releases queued during one event-loop turn as one pipeline, and
    hands each caller its own reply (or its own error). Releases ride on the turn's first check
    when there is one (its script removes them before it counts), so a busy worker sends one
    command per operation. EVALSHA of a script Redis has forgotten (a restart, SCRIPT FLUSH)
    loads it and sends those commands once more."""

    def __init__(self, client: Redis, admit: AsyncScript) -> None:
        self._client = client
        self._admit = admit
        self._checks: list[tuple[list[Any], list[Any], Reply]] = []
        self._releases: list[tuple[str, str, Reply]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def admit(self, keys: list[Any], args: list[Any]) -> Reply:
        future = self._queued()
        self._checks.append((keys, args, future))
        return future

    def release(self, key: str, token: str) -> Reply:
        future = self._queued()
        self._releases.append((key, token, future))
        return future

    def _queued(self) -> Reply:
        loop = asyncio.get_running_loop()
        if not self._checks and not self._releases:
            loop.call_soon(self._flush)  # after the callbacks already ready in this turn
        return loop.create_future()

    def _flush(self) -> None:
        checks, self._checks = self._checks, []
        releases, self._releases = self._releases, []
        commands: list[tuple[Any, ...]] = []
        waiters: list[list[Reply]] = []  # per command: its caller, then the releases riding on it
        if checks and releases:
            keys, args, future = checks[0]
            keys = [*keys, *(key for key, _, _ in releases)]
            checks[0] = (keys, [*args, *(token for _, token, _ in releases)], future)
        for keys, args, future in checks:
            commands.append(("EVALSHA", self._admit.sha, len(keys), *keys, *args))
            waiters.append([future])
        if checks:
            waiters[0].extend(future for _, _, future in releases)
        else:
            for key, token, future in releases:
                commands.append(("ZREM", key, token))
                waiters.append([future])
        task = asyncio.get_running_loop().create_task(self._send(commands, waiters))
        self._tasks.add(task)  # (a reference, so the task is not collected mid-flight)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, commands: list[tuple[Any, ...]], waiters: list[list[Reply]]) -> None:
        try:
            replies = await self._pipeline(commands)
            unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                await self._client.script_load(self._admit.script)
                again = await self._pipeline([commands[i] for i in unknown])
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
        except BaseException as exc:  # the link failed: every caller of the batch hears it
            for futures in waiters:
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            if not isinstance(exc, Exception):
                raise
            return
        for futures, reply in zip(waiters, replies, strict=True):
            for rider, future in enumerate(futures):
                if future.done():
                    continue  # its caller was cancelled
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(None if rider else reply)

    async def _pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


class RedisStore:
    name = "redis"

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        self._client = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=5,
            # One quick retry: enough for a pooled connection gone stale across a Redis restart,
            # while an outage still falls back within one timeout (redis-py's default retries
            # ten times, seconds in all, on every check).
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        )
        self._listen_timeout = timeout_seconds
        self._url = url
        self.prefix = prefix
        self.channel = f"{prefix}:live"
        self._admit = self._client.register_script(_ADMIT)
        self._renew = self._client.register_script(_RENEW)
        self._count = self._client.register_script(_IN_FLIGHT)
        self._batch = _Batcher(self._client, self._admit)

    def _bucket(self, key: str) -> str:
        return f"{self.prefix}:rate:{{{key}}}"

    def _leases(self, key: str) -> str:
        return f"{self.prefix}:busy:{{{key}}}"

    async def admit(
        self,
        key: str,
        cost: int,
        per_minute: int,
        max_in_flight: int,
        token: str,
        ttl_seconds: float,
        releases: Sequence[Lease],
    ) -> Verdict:
        keys = [self._bucket(key), self._leases(key), *(self._leases(r.key) for r in releases)]
        args: list[str | int] = [cost, per_minute, max_in_flight, token, int(ttl_seconds * 1000)]
        args.extend(r.token for r in releases)
        kind, wait = await self._batch.admit(keys, args)
        return Verdict(kind.decode(), float(wait))

    async def release(self, leases: Sequence[Lease]) -> None:
        if len(leases) == 1:  # (the common case: one operation's lease)
            await self._batch.release(self._leases(leases[0].key), leases[0].token)
            return
        await asyncio.gather(*(self._batch.release(self._leases(lease.key), lease.token) for lease in leases))

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> None:
        await self._renew(
            keys=[self._leases(lease.key) for lease in leases],
            args=[int(ttl_seconds * 1000), *(lease.token for lease in leases)],
        )

    async def in_flight(self, key: str) -> int:
        return int(await self._count(keys=[self._leases(key)]))

    async def notify(self, payload: str) -> None:
        await self._client.publish(self.channel, payload)

    async def listener(self) -> RedisListener:
        client = Redis.from_url(self._url, socket_connect_timeout=self._listen_timeout)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await pubsub.aclose()
            await client.aclose()
            raise
        return RedisListener(client, pubsub)

    async def close(self) -> None:
        self._batch.close()
        await self._client.aclose()


class RedisListener:
    def __init__(self, client: Redis, pubsub: PubSub) -> None:
        self._client = client
        self._pubsub = pubsub

    async def next(self, wait_seconds: float) -> str | None:
        """The next payload; None after ``wait_seconds`` without one. Raises when the link is lost."""
        message = await self._pubsub.get_message(timeout=wait_seconds)
        if message is None:
            await self._pubsub.ping()  # a dead connection raises here instead of staying silent
            return None
        data = message.get("data")
        if message.get("type") != "message" or not isinstance(data, bytes):
            return None  # a pong, or a (un)subscribe confirmation
        return data.decode()

    async def close(self) -> None:
        await self._pubsub.aclose()
        await self._client.aclose()
