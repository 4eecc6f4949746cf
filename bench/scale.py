"""Scale-out benchmarks (issue 14): the shared limiter, 1 against 2 workers, cross-worker latency.

    python -m bench.scale limiter [--seconds 5 --rounds 3]   # logs/s: memory vs Redis vs PostgreSQL limiter
    python -m bench.scale workers [--seconds 5 --rounds 3]   # logs/s: serve --workers 1 vs 2 (PG + Redis)
    python -m bench.scale latency [--logs 200]               # performanceUpdated A <- B, p50/p99

Every mode starts real servers (``trainer-console serve``, loopback) on a fresh PostgreSQL
database (``TRAINER_PG_ADMIN_URL``, default the local server) with a Redis key prefix of its own
(``TRAINER_BENCH_REDIS_URL``, default the local Redis), and drives them with wrk
(``apt-get install wrk``): ``logScenario`` from 16 engine principals, every one metered, limits
raised first so nothing is refused. The cases of a mode are up at once and measured in
alternation, round after round, so a drifting machine favours none of them.

- limiter: the same server three times, with ``TRAINER_COORDINATION`` memory, redis and postgres.
  Target: the Redis limiter costs at most 10 % per log.
- workers: ``--workers 1`` against ``--workers 2``, both on PostgreSQL + Redis.
- latency: two servers; a dashboard subscribed through A; logs for its user sent through B, one
  every 50 ms, while wrk loads both; from B's answer (sent after the commit) to the message on A.
  Both buses: Redis pub/sub and PostgreSQL NOTIFY. Target: p99 <= 250 ms, no duplicates.

Run on demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import redis
import websockets
from websockets.typing import Subprotocol

from app.auth import Role, issue_token
from app.settings import Settings
from bench.upm import (
    LOG_SCENARIO,
    RAISE_LIMITS,
    ROOT,
    SECRET,
    cpu_seconds,
    free_port,
    lua_post,
    pg_database,
    scenario,
    wrk,
)

REDIS_URL = os.environ.get("TRAINER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECTIONS = 16
SUBSCRIBE = "subscription($u: String!) { performanceUpdated(userId: $u) { scenario { totalSessions } } }"
SETTINGS = Settings(jwt_secret=SECRET)
ADMIN = issue_token(SETTINGS, sub="bench-admin", role=Role.ADMIN)
ENGINES = [issue_token(SETTINGS, sub=f"scenario-engine-{n}", role=Role.ENGINE) for n in range(CONNECTIONS)]


@contextmanager
def redis_prefix() -> Iterator[str]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


SERVER_PIDS: dict[str, int] = {}  # base URL -> the serving process (one worker: uvicorn runs in it)


def redis_cpu_seconds() -> float:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@contextmanager
def server(database_url: str, env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """``trainer-console serve`` on a free port; its base URL once /readyz answers."""
    port = free_port()
    environment = os.environ | {
        "TRAINER_DATABASE_URL": database_url,
        "TRAINER_JWT_SECRET": SECRET,
        "TRAINER_LOG_LEVEL": "WARNING",
    }
    environment.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, env=environment | env, cwd=ROOT, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    SERVER_PIDS[base] = process.pid
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"{command} did not become ready")
        yield base
    finally:
        process.terminate()
        process.wait(20)


def raise_limits(base: str) -> None:
    response = httpx.post(
        f"{base}/graphql", headers={"Authorization": f"Bearer {ADMIN}"}, json={"query": RAISE_LIMITS}
    )
    response.raise_for_status()
    assert "errors" not in response.json(), response.text


def log_lua() -> str:
    template = json.dumps({"query": LOG_SCENARIO, "variables": {"input": scenario(0, 0)}})
    template = template.replace('"u_00000"', '"u_%05d"').replace('"t0"', '"t%d"')
    body = f"string.format([==[{template}]==], counter % 1000, (counter % 1000) % 50)"
    return lua_post(body, ENGINES)


Figures = dict[str, list[float]]


def load(bases: dict[str, str], seconds: int, rounds: int) -> tuple[Figures, Figures, Figures]:
    """logs/s of each case, measured in alternation, with the server's and Redis's CPU ms per
    log in each round; a warm-up round first (registers users)."""
    lua = log_lua()
    for base in bases.values():
        raise_limits(base)
        wrk(f"{base}/graphql", lua, 2, CONNECTIONS)
    rates: Figures = {case: [] for case in bases}
    server_ms: Figures = {case: [] for case in bases}
    redis_ms: Figures = {case: [] for case in bases}
    for _round in range(rounds):
        for case, base in bases.items():
            pid = SERVER_PIDS[base]
            cpu, redis_cpu = cpu_seconds(pid), redis_cpu_seconds()
            rate = wrk(f"{base}/graphql", lua, seconds, CONNECTIONS)
            logs = rate * seconds
            rates[case].append(rate)
            server_ms[case].append((cpu_seconds(pid) - cpu) * 1000 / logs)
            redis_ms[case].append((redis_cpu_seconds() - redis_cpu) * 1000 / logs)
    return rates, server_ms, redis_ms


def bench_limiter(seconds: int, rounds: int) -> None:
    with pg_database() as database_url, redis_prefix() as prefix, ExitStack() as stack:
        shared = {"TRAINER_REDIS_URL": REDIS_URL, "TRAINER_REDIS_PREFIX": prefix}
        bases = {
            "memory": stack.enter_context(server(database_url, {"TRAINER_COORDINATION": "memory"})),
            "redis": stack.enter_context(server(database_url, {"TRAINER_COORDINATION": "redis", **shared})),
            "postgres": stack.enter_context(server(database_url, {"TRAINER_COORDINATION": "postgres"})),
        }
        rates, server_ms, redis_ms = load(bases, seconds, rounds)
    memory = statistics.median(rates["memory"])
    memory_cpu = statistics.median(server_ms["memory"])
    print(f"logScenario/s, one worker on PostgreSQL, {CONNECTIONS} connections, {rounds} x {seconds} s")
    print("  (cost: time per log against memory; CPU: the server's, and Redis's, ms per log)")
    for case, values in rates.items():
        median = statistics.median(values)
        cost = (memory / median - 1) * 100
        cpu = statistics.median(server_ms[case])
        busy = cpu * median / 10  # % of one core
        print(
            f"  {case:9} median {median:7.1f}  (rounds {' '.join(f'{v:.0f}' for v in values)})"
            f"  cost {cost:+.1f} %  server CPU {cpu:.3f} ms/log ({(cpu / memory_cpu - 1) * 100:+.1f} %,"
            f" core {busy:.0f} % busy)  Redis CPU {statistics.median(redis_ms[case]):.3f} ms/log"
        )
    print("  target: the Redis limiter costs at most 10 % per log")


def bench_workers(seconds: int, rounds: int) -> None:
    with pg_database() as database_url, redis_prefix() as prefix, ExitStack() as stack:
        shared = {"TRAINER_REDIS_URL": REDIS_URL, "TRAINER_REDIS_PREFIX": prefix}
        bases = {
            "1 worker": stack.enter_context(server(database_url, shared, 1)),
            "2 workers": stack.enter_context(server(database_url, shared, 2)),
        }
        figures, _cpu, _redis_cpu = load(bases, seconds, rounds)
    one, two = (statistics.median(figures[case]) for case in bases)
    print(f"logScenario/s on PostgreSQL + Redis, {CONNECTIONS} connections, {rounds} x {seconds} s")
    for case, values in figures.items():
        print(
            f"  {case:9} median {statistics.median(values):7.1f}",
            f" (rounds {' '.join(f'{v:.0f}' for v in values)})",
        )
    print(f"  scaling 2 workers / 1: {two / one:.2f} (2 cores, shared with PostgreSQL and wrk)")


async def measure_latency(base_a: str, base_b: str, logs: int) -> tuple[list[float], int, int]:
    """Latencies in ms, messages beyond one per log (duplicates), logs never heard."""
    user = f"u_lat_{uuid.uuid4().hex[:6]}"
    engine = {"Authorization": f"Bearer {ENGINES[0]}"}

    def variables() -> dict[str, Any]:
        return {"input": scenario(0, 0) | {"userId": user, "logId": uuid.uuid4().hex}}

    latencies: list[float] = []
    duplicates = missed = 0
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.post(
            f"{base_b}/graphql", headers=engine, json={"query": LOG_SCENARIO, "variables": variables()}
        )
        assert "errors" not in first.json(), first.text
        url = base_a.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {ADMIN}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscribe = {"query": SUBSCRIBE, "variables": {"u": user}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
            initial = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert initial["type"] == "next" and "errors" not in initial["payload"], initial
            for _ in range(logs):
                started = time.monotonic()
                answer = await http.post(
                    f"{base_b}/graphql",
                    headers=engine,
                    json={"query": LOG_SCENARIO, "variables": variables()},
                )
                assert "errors" not in answer.json(), answer.text
                committed = time.monotonic()
                try:
                    await asyncio.wait_for(ws.recv(), 2)
                    latencies.append((time.monotonic() - committed) * 1000)
                except TimeoutError:
                    missed += 1
                    continue
                # anything else before the next log is a second delivery of this one
                while (left := started + 0.05 - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(ws.recv(), left)
                        duplicates += 1
                    except TimeoutError:
                        break
    return latencies, duplicates, missed


def background(bases: list[str], seconds: int) -> list[threading.Thread]:
    lua = log_lua()
    threads = [
        threading.Thread(target=wrk, args=(f"{b}/graphql", lua, seconds, CONNECTIONS // 2)) for b in bases
    ]
    for thread in threads:
        thread.start()
    return threads


def bench_latency(logs: int) -> None:
    print(
        f"performanceUpdated, subscribed through A, {logs} logs sent through B one per 50 ms,",
        "under wrk load on both",
    )
    for bus in ("redis", "postgres"):
        with pg_database() as database_url, redis_prefix() as prefix, ExitStack() as stack:
            env = {"TRAINER_COORDINATION": bus}
            if bus == "redis":
                env |= {"TRAINER_REDIS_URL": REDIS_URL, "TRAINER_REDIS_PREFIX": prefix}
            base_a = stack.enter_context(server(database_url, env))
            base_b = stack.enter_context(server(database_url, env))
            raise_limits(base_a)
            time.sleep(1.5)  # the limits pushed to B
            threads = background([base_a, base_b], int(logs * 0.06) + 3)
            time.sleep(1)
            latencies, duplicates, missed = asyncio.run(measure_latency(base_a, base_b, logs))
            for thread in threads:
                thread.join()
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"  {bus:8} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {latencies[-1]:6.1f} ms  "
            f"heard {len(latencies)}/{logs}  missed {missed}  duplicates {duplicates}"
        )
    print("  target: p99 <= 250 ms, no duplicates")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["limiter", "workers", "latency"])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logs", type=int, default=200)
    args = parser.parse_args()
    print(f"python -m bench.scale {' '.join(sys.argv[1:])}")
    if args.mode == "limiter":
        bench_limiter(args.seconds, args.rounds)
    elif args.mode == "workers":
        bench_workers(args.seconds, args.rounds)
    else:
        bench_latency(args.logs)


if __name__ == "__main__":
    main()
