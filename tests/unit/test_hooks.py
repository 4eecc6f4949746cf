"""The lean extensions runner runs every lifecycle hook as Strawberry's own runner does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from graphql_schema.hooks import LeanExtensionsRunner

QUERY = "{ answer }"
FAILING = "{ broken }"


@strawberry.type
class Query:
    @strawberry.field
    def answer(self) -> int:
        return 42

    @strawberry.field
    def broken(self) -> int:
        raise ValueError("boom")


class Lean(strawberry.Schema):
    def create_extensions_runner(self, execution_context, extensions):  # type: ignore[no-untyped-def]
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)


def recording(seen: list[str]) -> type[SchemaExtension]:
    class Generators(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            seen.append("operation:enter")
            yield
            result = self.execution_context.result
            seen.append(f"operation:exit errors={bool(result and result.errors)}")

        def on_parse(self) -> Iterator[None]:
            seen.append("parse:enter")
            yield
            seen.append(f"parse:exit document={self.execution_context.graphql_document is not None}")

        def on_validate(self) -> Iterator[None]:
            seen.append("validate")
            yield

        def on_execute(self) -> Iterator[None]:
            seen.append("execute:enter")
            try:
                yield
            finally:
                seen.append("execute:exit")

    return Generators


def async_recording(seen: list[str]) -> type[SchemaExtension]:
    class Asynchronous(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            seen.append("async execute:enter")
            yield
            seen.append("async execute:exit")

    return Asynchronous


@pytest.mark.parametrize("query", [QUERY, FAILING])
async def test_generator_hooks_run_in_strawberrys_order(query):
    # given: the same extension under Strawberry's runner and under ours
    theirs: list[str] = []
    ours: list[str] = []
    # when
    expected = await strawberry.Schema(query=Query, extensions=[recording(theirs)]).execute(query)
    found = await Lean(query=Query, extensions=[recording(ours)]).execute(query)
    # then
    assert ours == theirs
    assert found.data == expected.data
    assert [e.message for e in found.errors or []] == [e.message for e in expected.errors or []]


async def test_async_hooks_and_several_hooks_in_one_stage_go_to_strawberrys_managers():
    # given
    theirs: list[str] = []
    ours: list[str] = []
    # when
    await strawberry.Schema(query=Query, extensions=[recording(theirs), async_recording(theirs)]).execute(
        QUERY
    )
    result = await Lean(query=Query, extensions=[recording(ours), async_recording(ours)]).execute(QUERY)
    # then
    assert ours == theirs
    assert "async execute:exit" in ours
    assert result.data == {"answer": 42}


def test_hooks_run_in_synchronous_execution_too():
    # given
    seen: list[str] = []
    # when
    result = Lean(query=Query, extensions=[recording(seen)]).execute_sync(QUERY)
    # then
    assert result.data == {"answer": 42}
    assert seen[0] == "operation:enter" and seen[-1] == "operation:exit errors=False"
    assert "execute:exit" in seen
