"""Micro-benchmarks of a log's CPU, in one process: finer than this machine's end-to-end noise.

    python -m bench.micro hooks     # the four extension stages: Strawberry's runner beside ours
    python -m bench.micro plan      # planning one logScenario (validation, rows, skill deltas)

Each prints the minimum and median over rounds (interleaved where two are compared). Run on
demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from strawberry.extensions.runner import SchemaExtensionsRunner

from app.auth import Principal, Role
from app.limits import OperationGuard
from app.services.upm import recording
from app.services.upm_ruleset import DEFAULT_UPM_RULESET
from app.settings import Settings
from bench.upm import scenario
from graphql_schema.documents import Documents
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
            recording.plan("scenario", payload, principal, settings, DEFAULT_UPM_RULESET)
        times.append((time.perf_counter() - start) / logs * 1e6)
    print(f"plan one logScenario: {_figures(times)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("hooks", "plan"))
    args = parser.parse_args()
    if args.what == "hooks":
        asyncio.run(bench_hooks())
    else:
        bench_plan()


if __name__ == "__main__":
    main()
