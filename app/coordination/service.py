"""One ``Coordination`` per app (worker process); see the package's docstring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from app.coordination.memory import MemoryAdmission
from app.coordination.verdicts import OK, Lease, Verdict, refuse
from app.settings import Settings

log = logging.getLogger("trainer_console.coordination")

RETRY_SECONDS = 1.0  # how soon a store that failed is tried again
RELEASE_RETRY_SECONDS = 1.0  # failed releases are retried this often (or ride on the next check)
LISTEN_POLL_SECONDS = 1.0  # a silent bus connection is probed this often
MAX_PAYLOAD_TOPICS = 64  # topics per message (NOTIFY payloads stop at 8000 bytes)
SEND_RETRY_SECONDS = 0.2  # a failed publish is retried after this, doubling
SEND_RETRY_MAX_SECONDS = 1.0
MAX_OUTBOX_TOPICS = 10_000  # kept for a retry while the bus is down; the oldest go first


class Listener(Protocol):
    async def next(self, wait_seconds: float) -> str | None: ...
    async def close(self) -> None: ...


class Store(Protocol):
    name: str

    async def admit(
        self,
        key: str,
        cost: int,
        per_minute: int,
        max_in_flight: int,
        token: str,
        ttl_seconds: float,
        releases: Sequence[Lease],
    ) -> Verdict: ...
    async def release(self, leases: Sequence[Lease]) -> None: ...
    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> None: ...
    async def in_flight(self, key: str) -> int: ...
    async def notify(self, payload: str) -> None: ...
    async def listener(self) -> Listener: ...
    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CoordinationStatus:
    backend: str  # memory | postgres | redis
    degraded: bool
    limits_shared: bool  # False: each worker counts alone (memory, or the fallback)
    live_updates_shared: bool  # False: updates reach this worker's subscribers only
    last_error: str | None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


class Coordination:
    def __init__(
        self,
        store: Store | None,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.backend = store.name if store is not None else "memory"
        self.memory = MemoryAdmission(clock)
        self.lease_seconds = lease_seconds
        self.origin = os.urandom(8).hex()
        self._clock = clock
        self._held: dict[str, Lease] = {}
        self._releases: list[Lease] = []
        self._release_due = asyncio.Event()
        self._limits_error: str | None = None
        self._limits_retry_at = -float("inf")
        self._bus_error: str | None = None  # the listener's
        self._send_error: str | None = None  # the last publish's, until one succeeds
        self._bus_up = asyncio.Event()
        self._bus_was_up = False
        self._outbox: dict[str, None] = {}
        self._outbox_due = asyncio.Event()
        self._handlers: list[Callable[[str], None]] = []
        self._resumed: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # --- limits ---------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        return self.store is not None

    async def admit(self, key: str, cost: int, per_minute: int, max_in_flight: int) -> Lease:
        """Charge ``cost`` root fields and take an in-flight slot, or raise RateLimited having
        charged nothing. Falls back to this process's counters while the store is unreachable."""
        store = self.store
        if store is None or self._clock() < self._limits_retry_at:
            return self.memory.admit(key, cost, per_minute, max_in_flight)
        self.start()
        token = os.urandom(12).hex()
        releases, self._releases = self._releases, []
        try:
            verdict = await store.admit(
                key, cost, per_minute, max_in_flight, token, self.lease_seconds, releases
            )
        except Exception as exc:
            self._releases.extend(releases)  # released later, or they expire
            self._limits_fault(exc)
            return self.memory.admit(key, cost, per_minute, max_in_flight)
        if self._limits_error is not None:
            log.warning("limits are shared again through %s", self.backend)
            self._limits_error = None
        if verdict.kind != OK:
            refuse(verdict, cost, per_minute, max_in_flight)
        lease = Lease(key, token, shared=True)
        self._held[token] = lease
        return lease

    async def release(self, lease: Lease) -> None:
        """Before the answer is sent, so a client that goes on at once (through any worker)
        finds its slot free. One that fails is retried with the next check, or expires."""
        if not lease.shared:
            self.memory.release(lease)
            return
        self._held.pop(lease.token, None)
        if self.store is None or self._clock() < self._limits_retry_at:
            self._releases.append(lease)
            self._release_due.set()
            return
        try:
            await self.store.release([lease])
        except Exception as exc:
            self._releases.append(lease)
            self._limits_fault(exc)

    async def in_flight(self, key: str) -> int:
        if self.store is None or self._limits_error is not None:
            return self.memory.in_flight(key)
        await self._flush_releases()
        return await self.store.in_flight(key)

    def _limits_fault(self, error: BaseException) -> None:
        if self._limits_error is None:
            log.error(
                "limits store %s unreachable (%s): counting in this process until it is back",
                self.backend,
                _describe(error),
            )
        self._limits_error = _describe(error)
        self._limits_retry_at = self._clock() + RETRY_SECONDS

    async def _flush_releases(self) -> None:
        if not self._releases or self.store is None:
            return
        # (also after a fault: the store is back once a check or this flush succeeds)
        releases, self._releases = self._releases, []
        try:
            await self.store.release(releases)
        except Exception as exc:
            self._limits_fault(exc)  # their leases expire on their own

    async def _release_loop(self) -> None:
        while not self._closed:
            await self._release_due.wait()
            await asyncio.sleep(RELEASE_RETRY_SECONDS)
            self._release_due.clear()
            if self._clock() >= self._limits_retry_at:
                await self._flush_releases()

    async def _renew_loop(self) -> None:
        """Keeps this process's leases alive; a process that dies stops, and they expire."""
        assert self.store is not None
        while not self._closed:
            await asyncio.sleep(self.lease_seconds / 3)
            held = list(self._held.values())
            if held:
                try:
                    await self.store.renew(held, self.lease_seconds)
                except Exception as exc:
                    self._limits_fault(exc)

    # --- live updates ---------------------------------------------------------------------

    def subscribe(self, handler: Callable[[str], None]) -> None:
        """``handler(topic)`` for every topic another process publishes."""
        self._handlers.append(handler)

    def on_resume(self, callback: Callable[[], None]) -> None:
        """Called when the bus is back after an outage: updates may have been missed."""
        self._resumed.append(callback)

    def publish(self, topic: str) -> None:
        """Tell the other processes; coalesced with whatever else is waiting to be sent."""
        if self.store is None:
            return
        self.start()
        self._outbox[topic] = None
        self._outbox_due.set()

    async def _send_loop(self) -> None:
        assert self.store is not None
        send_backoff = SEND_RETRY_SECONDS
        while not self._closed:
            await self._outbox_due.wait()
            self._outbox_due.clear()
            topics, self._outbox = list(self._outbox), {}
            for start in range(0, len(topics), MAX_PAYLOAD_TOPICS):
                payload = orjson.dumps({"o": self.origin, "t": topics[start : start + MAX_PAYLOAD_TOPICS]})
                try:
                    await self.store.notify(payload.decode())
                except Exception as exc:
                    # Kept, not dropped: the first publish after a restart often meets a stale
                    # pooled connection, and a subscriber must still hear of what changed.
                    self._send_fault(exc)
                    self._outbox = {**dict.fromkeys(topics[start:]), **self._outbox}
                    if len(self._outbox) > MAX_OUTBOX_TOPICS:  # (receivers re-read all on resume)
                        self._outbox = dict.fromkeys(list(self._outbox)[-MAX_OUTBOX_TOPICS:])
                    self._outbox_due.set()
                    await asyncio.sleep(send_backoff)
                    send_backoff = min(SEND_RETRY_MAX_SECONDS, send_backoff * 2)
                    break
            else:
                send_backoff = SEND_RETRY_SECONDS
                if self._send_error is not None:
                    log.warning("live updates are sent through %s again", self.backend)
                    self._send_error = None

    async def _listen_loop(self) -> None:
        assert self.store is not None
        backoff = 0.1
        while not self._closed:
            try:
                listener = await self.store.listener()
            except Exception as exc:
                self._bus_fault(exc)
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                continue
            backoff = 0.1
            self._bus_connected()
            try:
                while not self._closed:
                    payload = await listener.next(LISTEN_POLL_SECONDS)
                    if payload:
                        self._dispatch(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._bus_fault(exc)
            finally:
                with contextlib.suppress(Exception):
                    await listener.close()

    def _dispatch(self, payload: str) -> None:
        try:
            message = orjson.loads(payload)
            if message["o"] == self.origin:
                return  # delivered locally when it was published: never twice
            topics = [str(topic) for topic in message["t"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignored a malformed live-update message: %.200s", payload)
            return
        for topic in topics:
            for handler in self._handlers:
                handler(topic)

    def _bus_connected(self) -> None:
        resumed = self._bus_was_up and not self._bus_up.is_set()
        self._bus_up.set()
        self._bus_was_up = True
        if self._bus_error is not None:
            log.warning("live updates cross processes again through %s", self.backend)
        self._bus_error = None
        if resumed:
            for callback in self._resumed:
                callback()

    def _send_fault(self, error: BaseException) -> None:
        if self._send_error is None:
            log.error(
                "could not publish a live update through %s (%s): retrying",
                self.backend,
                _describe(error),
            )
        self._send_error = _describe(error)

    def _bus_fault(self, error: BaseException) -> None:
        if self._bus_error is None:
            log.error(
                "live-update bus %s unreachable (%s): updates reach this worker's subscribers only",
                self.backend,
                _describe(error),
            )
        self._bus_error = _describe(error)
        self._bus_up.clear()

    # --- lifecycle and health -------------------------------------------------------------

    def start(self) -> None:
        """Starts the background tasks on first use (idempotent; needs a running loop)."""
        if self._tasks or self.store is None or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen_loop()),
            loop.create_task(self._send_loop()),
            loop.create_task(self._release_loop()),
            loop.create_task(self._renew_loop()),
        ]

    async def started(self, within_seconds: float) -> None:
        """Start, and wait until the bus listens (so no update after start-up is missed)."""
        self.start()
        if self.store is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_seconds):
                    await self._bus_up.wait()

    async def status(self) -> CoordinationStatus:
        store = self.store
        if store is None:
            return CoordinationStatus("memory", False, False, False, None)
        if not self._bus_was_up and self._bus_error is None:
            await self.started(within_seconds=2.0)  # just started: not a fault yet
        if self._limits_error is not None and self._clock() >= self._limits_retry_at:
            try:  # a probe, so health shows a recovery without waiting for engine traffic
                await store.in_flight("")
                self._limits_error = None
            except Exception as exc:
                self._limits_fault(exc)
        limits_ok = self._limits_error is None
        bus_ok = self._bus_up.is_set() and self._send_error is None
        return CoordinationStatus(
            self.backend,
            not (limits_ok and bus_ok),
            limits_ok,
            bus_ok,
            self._limits_error or self._bus_error or self._send_error,
        )

    async def close(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        while tasks:  # a cancellation can be swallowed by a library: ask again until they end
            for task in tasks:
                task.cancel()
            _done, pending = await asyncio.wait(tasks, timeout=1.0)
            tasks = list(pending)
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self._flush_releases()
            await self.store.close()


def build_coordination(settings: Settings) -> Coordination:
    """The store the settings name (``Settings.coordination_backend``)."""
    store: Store | None = None
    timeout = settings.coordination_timeout_seconds
    backend = settings.coordination_backend
    if backend == "redis" and settings.redis_url:
        from app.coordination.redis_store import RedisStore

        store = RedisStore(settings.redis_url, settings.redis_prefix, timeout)
    elif backend == "postgres":
        from app.coordination.postgres_store import PostgresStore

        store = PostgresStore(settings.database_url, timeout)
    return Coordination(store, settings.coordination_lease_seconds)
