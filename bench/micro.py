"""Micro-benchmarks of a log's CPU, in one process: finer than this machine's end-to-end noise.

    python -m bench.micro hooks     # the four extension stages: Strawberry's runner beside ours
    python -m bench.micro plan      # planning one logScenario (validation, rows, skill deltas)
    python -m bench.micro request   # whole logScenario requests through the app, 32 at a time

``request`` calls the Starlette app directly (ASGI, no sockets: uvicorn's share is the same
for any endpoint) on a fresh SQLite database, with the group-commit writer, and reports the
process's CPU time per log. On this shared machine even that moves by tens of percent between
identical rounds; instructions do not. Under callgrind, ``--instructions`` counts them for one
round of 1,600 logs after the warm-up (repeatable to about 1 %)::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \
        .venv/bin/python -m bench.micro request --instructions

Each prints the minimum and median over rounds (interleaved where two are compared). Run on
demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from strawberry.extensions.runner import SchemaExtensionsRunner

from app.auth import Principal, Role, issue_token
from app.main import create_app
from app.services.upm import planning
from app.services.upm.ruleset import DEFAULT_UPM_RULESET
from app.settings import Settings
from bench.inprocess import instructions as counting_instructions
from bench.inprocess import post
from bench.upm import LOG_SCENARIO, RAISE_LIMITS, SECRET, fresh_database, scenario
from graphql_schema.documents import Documents
from graphql_schema.guard import OperationGuard
from graphql_schema.hooks import LeanExtensionsRunner

ROUNDS = 20


class _Context:
    """The little of Strawberry's execution context our two extensions read."""

    graphql_document = None
    query = None
    operation_name = None
    pre_execution_errors = None
    result = None
    context = None

    def __init__(self) -> None:
        self.parse_options: dict[str, Any] = {}


def _figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"min {ordered[0]:.1f} µs, median {ordered[len(ordered) // 2]:.1f} µs"


async def _stages(runner: type[SchemaExtensionsRunner], documents: Documents) -> None:
    extensions = [OperationGuard(), documents.extension()]
    for extension in extensions:
        extension.execution_context = _Context()  # type: ignore[assignment]
    stages = runner(execution_context=None, extensions=extensions)  # type: ignore[arg-type]
    async with stages.operation():
        async with stages.parsing():
            pass
        async with stages.validation():
            pass
        async with stages.executing():
            pass


async def bench_hooks(per_round: int = 2000) -> None:
    documents = Documents(Settings())
    samples: dict[type[SchemaExtensionsRunner], list[float]] = {
        SchemaExtensionsRunner: [],
        LeanExtensionsRunner: [],
    }
    for _ in range(ROUNDS):
        for runner, times in samples.items():
            start = time.perf_counter()
            for _ in range(per_round):
                await _stages(runner, documents)
            times.append((time.perf_counter() - start) / per_round * 1e6)
    for runner, times in samples.items():
        print(f"{runner.__name__:24s} four stages per request: {_figures(times)}")


def bench_plan(logs: int = 2000) -> None:
    settings = Settings()
    principal = Principal(sub="scenario-engine", role=Role.ENGINE)
    payloads = [scenario(i % 1000, i) for i in range(logs)]
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for payload in payloads:
            planning.plan("scenario", payload, principal, settings, DEFAULT_UPM_RULESET)
        times.append((time.perf_counter() - start) / logs * 1e6)
    print(f"plan one logScenario: {_figures(times)}")


async def _requests(
    settings: Settings, clients: int, per_client: int, rounds: int, instructions: bool
) -> list[float]:
    app = create_app(settings)
    admin = issue_token(settings, sub="bench-admin", role=Role.ADMIN)
    engines = [issue_token(settings, sub=f"scenario-engine-{n}", role=Role.ENGINE) for n in range(clients)]

    async def client(n: int, round_: int) -> None:
        for i in range(per_client):
            user = (round_ * clients * per_client + n * per_client + i) % 1000
            body = json.dumps({"query": LOG_SCENARIO, "variables": {"input": scenario(user, i)}})
            await post(app, body.encode(), engines[n])

    times = []
    async with app.router.lifespan_context(app):
        await post(app, json.dumps({"query": RAISE_LIMITS}).encode(), admin)
        await asyncio.gather(*(client(n, 0) for n in range(clients)))  # warm-up: the 1,000 users
        if instructions:
            with counting_instructions() as counted:
                await asyncio.gather(*(client(n, 1) for n in range(clients)))
            per_log = counted.instructions / (clients * per_client)
            print(f"logScenario request: {per_log:,.0f} instructions per log")
        for round_ in range(1, rounds + 1):
            start = time.process_time()
            await asyncio.gather(*(client(n, round_) for n in range(clients)))
            times.append((time.process_time() - start) / (clients * per_client) * 1e6)
    return times


def bench_request(rounds: int, instructions: bool, clients: int = 32, per_client: int = 50) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-micro-") as tmp:
        settings = Settings(database_url=fresh_database(Path(tmp), "micro"), jwt_secret=SECRET)
        timed = 0 if instructions else rounds
        # on uvloop, the loop uvicorn runs on
        times = uvloop.run(_requests(settings, clients, per_client, timed, instructions))
    if times:
        print(f"logScenario request, CPU per log ({clients} concurrent): {_figures(times)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("hooks", "plan", "request"))
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="request: rounds of 32 x 50 logs")
    parser.add_argument("--instructions", action="store_true", help="request: count them (under callgrind)")
    args = parser.parse_args()
    if args.what == "hooks":
        asyncio.run(bench_hooks())
    elif args.what == "request":
        bench_request(args.rounds, args.instructions)
    else:
        bench_plan()


if __name__ == "__main__":
    main()
