"""The instruction-count guard of the hot paths: CI fails when one costs 10 % over its budget.

    python -m bench.guard                  # all four paths under callgrind, against bench/budgets.txt
    python -m bench.guard --only log_scenario dashboard_page
    python -m bench.guard --tolerance 0.05 # a stricter look, locally

Wall time on these machines moves by tens of percent between identical runs; instructions
repeat to about 1 %. Each workload runs the Starlette app in one process (ASGI, no sockets) on
a fresh migrated SQLite database, under ``valgrind --tool=callgrind --instr-atstart=no``, and
counts the instructions of every thread (SQLite runs in aiosqlite's) of the measured requests
only, after a warm-up that leaves every cache of the app as a long-running server has it:

- ``log_scenario``: one ``logScenario``, 32 engines at a time (the ``bench.micro request``
  round, shorter), about users already registered;
- ``rest_log``: one ``POST /operator/upm/scenario/log`` (the same log over REST), 32 engines
  at a time, about the same users;
- ``log_events_1000``: one ``logEvents(recordsJson:)`` batch of 1,000 events;
- ``dashboard_page``: one ``users(first: 100) { performance { … } }`` page (``bench.upm``'s);
- ``performance_summary``: one ``performanceSummary`` of a user with 8 logs.

``bench/budgets.txt`` holds one budget per path (instructions per unit). Lowering a budget
after a saving is a normal commit; raising one needs a line in BENCHMARKS.md that says why.
Needs valgrind (``apt-get install valgrind``). Not part of the test suite: ``.ci/run`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from app.auth import Role, issue_token
from app.main import create_app
from app.settings import Settings
from bench.inprocess import instructions, post
from bench.upm import DASHBOARD, LOG_SCENARIO, RAISE_LIMITS, REST_LOG, SECRET, fresh_database, quiz, scenario

BUDGETS = Path(__file__).with_name("budgets.txt")
TOLERANCE = 0.10
CLIENTS = 32
USERS = 200
LOG_QUIZ = "mutation($input: QuizLogInput!) { logQuiz(input: $input) { recordId } }"
LOG_EVENTS = "mutation($records: JSON!) { logEvents(recordsJson: $records) { accepted duplicates rejected } }"
SUMMARY = (
    "query($u: String!) { performanceSummary(userId: $u) { scenario { totalSessions behaviorScore } "
    "quiz { totalQuizzes avgAccuracy strengths weaknesses } skill { upsell productKnowledge } } }"
)
# The two processes the four paths are measured in (run side by side, one per core).
GROUPS = {
    "writes": ("log_scenario", "rest_log", "log_events_1000"),
    "reads": ("dashboard_page", "performance_summary"),
}


def _body(query: str, variables: dict[str, Any]) -> bytes:
    return json.dumps({"query": query, "variables": variables}).encode()


async def _in_parallel(bodies: list[bytes], app: Any, tokens: list[str], path: str = "/graphql") -> None:
    """``CLIENTS`` clients, each sending its share of the bodies one after another."""

    async def client(n: int) -> None:
        for body in bodies[n::CLIENTS]:
            await post(app, body, tokens[n % len(tokens)], path)

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))


async def _settled(app: Any) -> None:
    """Check the ops settings now, so that no check falls inside the measured requests: under
    callgrind a request takes ~50 times its normal wall time, and a check every
    ``TRAINER_OPS_REFRESH_SECONDS`` of wall time would make the count follow the machine's load."""
    app.state.ops.invalidate()
    await app.state.ops.current()


async def _one_after_another(app: Any, path: str, bodies: list[bytes], token: str) -> None:
    """Count the instructions of these requests, sent one after another, per request."""
    await _settled(app)
    with instructions() as counted:
        for body in bodies:
            await post(app, body, token)
    _report(path, counted.instructions, len(bodies))


def _report(path: str, total: int, units: int) -> None:
    print(f"guard {path} {total // units}", flush=True)


async def _writes(app: Any, admin: str, engines: list[str], only: set[str]) -> None:
    from bench.ingest import make_events  # the events bench.ingest sends

    logs = [_body(LOG_SCENARIO, {"input": scenario(i % USERS, i)}) for i in range(USERS + 7 * CLIENTS)]
    await _in_parallel(logs[:USERS], app, engines)  # registers the users
    await _in_parallel(logs[USERS : USERS + 2 * CLIENTS], app, engines)  # warm-up
    if "log_scenario" in only:
        measured = logs[USERS + 2 * CLIENTS :]
        await _settled(app)
        with instructions() as counted:
            await _in_parallel(measured, app, engines)
        _report("log_scenario", counted.instructions, len(measured))
    if "rest_log" in only:
        rest = [
            json.dumps(scenario(i % USERS, i)).encode()
            for i in range(USERS + 7 * CLIENTS, USERS + 14 * CLIENTS)
        ]
        await _in_parallel(rest[: 2 * CLIENTS], app, engines, REST_LOG)  # warm-up
        await _settled(app)
        with instructions() as counted:
            await _in_parallel(rest[2 * CLIENTS :], app, engines, REST_LOG)
        _report("rest_log", counted.instructions, len(rest) - 2 * CLIENTS)
    if "log_events_1000" in only:
        events = make_events(3000, run="guard")
        batches = [_body(LOG_EVENTS, {"records": events[i : i + 1000]}) for i in range(0, 3000, 1000)]
        await post(app, batches[0], engines[0])  # warm-up
        await _one_after_another(app, "log_events_1000", batches[1:], engines[0])


async def _reads(app: Any, admin: str, engines: list[str], only: set[str]) -> None:
    logs = [
        _body(query, {"input": make(user, i)})
        for i in range(4)
        for user in range(100)
        for query, make in ((LOG_SCENARIO, scenario), (LOG_QUIZ, quiz))
    ]
    await _in_parallel(logs, app, engines)  # 100 users with 8 logs each
    page = json.dumps({"query": DASHBOARD}).encode()
    summary = _body(SUMMARY, {"u": "u_00001"})
    for _ in range(3):  # warm-up
        await post(app, page, admin)
        await post(app, summary, admin)
    if "dashboard_page" in only:
        await _one_after_another(app, "dashboard_page", [page] * 4, admin)
    if "performance_summary" in only:
        await _one_after_another(app, "performance_summary", [summary] * 20, admin)


async def _measure(settings: Settings, group: str, only: set[str]) -> None:
    run: Callable[[Any, str, list[str], set[str]], Awaitable[None]] = _writes if group == "writes" else _reads
    app = create_app(settings)
    admin = issue_token(settings, sub="guard-admin", role=Role.ADMIN)
    engines = [issue_token(settings, sub=f"guard-engine-{n}", role=Role.ENGINE) for n in range(CLIENTS)]
    async with app.router.lifespan_context(app):
        await post(app, json.dumps({"query": RAISE_LIMITS}).encode(), admin)
        await run(app, admin, engines, only)


def read_budgets() -> dict[str, int]:
    budgets = {}
    for line in BUDGETS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            path, number = line.split()
            budgets[path] = int(number.replace(",", "").replace("_", ""))
    return budgets


def _count(groups: dict[str, list[str]]) -> dict[str, int]:
    """Each group in its own process under callgrind, side by side."""
    env = os.environ | {"PYTHONHASHSEED": "0"}
    env.pop("DATABASE_URL", None)
    processes = {
        group: subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                "-m",
                "bench.guard",
                "--measure",
                group,
                "--only",
                *paths,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        for group, paths in groups.items()
    }
    counts: dict[str, int] = {}
    for group, process in processes.items():
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"the {group} workload failed ({process.returncode}):\n{out}\n{err[-3000:]}")
        for line in out.splitlines():
            if line.startswith("guard "):
                _, path, number = line.split()
                counts[path] = int(number)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    every = [path for paths in GROUPS.values() for path in paths]
    parser.add_argument("--only", nargs="+", choices=every, default=every)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="over the budget that fails")
    parser.add_argument("--measure", choices=GROUPS, help=argparse.SUPPRESS)  # the child, under callgrind
    args = parser.parse_args()
    if args.measure:
        with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
            url = fresh_database(Path(tmp), args.measure)
            # the live deriver (off the request path) would fold inside the measured requests' thread
            settings = Settings(
                database_url=url, jwt_secret=SECRET, ops_refresh_seconds=60, live_derive=False
            )
            uvloop.run(_measure(settings, args.measure, set(args.only)))  # the loop uvicorn runs on
        return
    budgets = read_budgets()
    wanted = {group: [p for p in paths if p in args.only] for group, paths in GROUPS.items()}
    counts = _count({group: paths for group, paths in wanted.items() if paths})
    failed = []
    print(f"{'path':22} {'instructions':>14} {'budget':>14} {'ratio':>7}")
    for path in args.only:
        count, budget = counts[path], budgets[path]
        ratio = count / budget
        over, under = ratio > 1 + args.tolerance, ratio < 1 - TOLERANCE
        verdict = "OVER BUDGET" if over else ("lower the budget?" if under else "")
        print(f"{path:22} {count:>14,} {budget:>14,} {ratio:>7.3f} {verdict}")
        if over:
            failed.append(path)
    if failed:
        raise SystemExit(
            f"over budget by more than {args.tolerance:.0%}: {', '.join(failed)} "
            "(a slowdown; if it is wanted, raise bench/budgets.txt and say why in BENCHMARKS.md)"
        )


if __name__ == "__main__":
    main()
