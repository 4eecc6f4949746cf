"""The fast completion path answers exactly what graphql-core's own path answers."""

from __future__ import annotations

import enum
import gc
from datetime import UTC, datetime

import pytest
import strawberry
from graphql import execute, graphql_sync, parse

from graphql_schema.execution import FastExecutionContext


@strawberry.enum
class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


@strawberry.type
class Inner:
    score: float
    label: str | None
    tags: list[str]
    maybe_tags: list[str | None] | None
    level: Level
    at: datetime


@strawberry.type
class Item:
    id: strawberry.ID
    count: int
    inner: Inner
    inners: list[Inner]
    must: str | None  # exposed as non-null below through a resolver-free field of a broken row

    @strawberry.field
    def computed(self, factor: int = 2) -> int:
        return self.count * factor


@strawberry.type
class Broken:
    name: str


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return ITEMS

    @strawberry.field
    def broken(self) -> list[Broken]:
        # a None where the schema promises a String!: graphql-core must report it
        return [Broken(name="ok"), Broken(name=None)]  # type: ignore[arg-type]

    @strawberry.field
    def big(self) -> list[Item]:
        return [Item(id=strawberry.ID("x"), count=2**40, inner=ITEMS[0].inner, inners=[], must=None)]


AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ITEMS = [
    Item(
        id=strawberry.ID(str(i)),
        count=i,
        inner=Inner(
            score=i / 3,
            label=None if i % 2 else f"l{i}",
            tags=["a", "b"],
            maybe_tags=[None, "x"],
            level=Level.HIGH if i % 2 else Level.LOW,
            at=AT,
        ),
        inners=[Inner(score=1, label="one", tags=[], maybe_tags=None, level=Level.LOW, at=AT)],  # type: ignore[arg-type]
        must="m",
    )
    for i in range(5)
]

QUERIES = [
    "{ items { id count inner { score label tags maybeTags level at } } }",
    "{ items { __typename a: id b: count inner { __typename s: score } inners { score tags } } }",
    "{ items { ...F computed(factor: 3) } } fragment F on Item { id inner { ... on Inner { label } } }",
    "query($skip: Boolean!) { items { id @skip(if: $skip) count @include(if: $skip) inner { label } } }",
    "{ broken { name } }",
    "{ big { count } }",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_fast_path_matches_graphql_core(query):
    # given
    plain = strawberry.Schema(Query)
    fast = strawberry.Schema(Query, execution_context_class=FastExecutionContext)
    variables = {"skip": True}
    # when
    expected = await plain.execute(query, variable_values=variables)
    actual = await fast.execute(query, variable_values=variables)
    # then
    assert actual.data == expected.data
    assert [e.formatted for e in actual.errors or []] == [e.formatted for e in expected.errors or []]


async def test_errors_are_reported_through_the_fallback():
    fast = strawberry.Schema(Query, execution_context_class=FastExecutionContext)
    broken = await fast.execute("{ broken { name } }")
    big = await fast.execute("{ big { count } }")
    assert broken.errors and broken.errors[0].path == ["broken", 1, "name"]
    assert big.errors and "non 32-bit" in big.errors[0].message.lower()


async def test_plain_objects_skip_graphql_core_completion(monkeypatch):
    # given: count the objects graphql-core completes itself
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as Base

    calls: list[str] = []
    original = Base.collect_and_execute_subfields

    def counting(self, return_type, *args, **kwargs):
        calls.append(return_type.name)
        return original(self, return_type, *args, **kwargs)

    monkeypatch.setattr(Base, "collect_and_execute_subfields", counting)
    fast = strawberry.Schema(Query, execution_context_class=FastExecutionContext)
    # when
    plain_only = await fast.execute(QUERIES[0])
    with_resolver = await fast.execute(QUERIES[2])
    # then: Item has a resolver field only in the second query
    assert plain_only.errors is None and with_resolver.errors is None
    assert calls.count("Item") == 5
    assert "Inner" not in calls


PINNED = "{ items { id inner { label tags } inners { score } } }"
PINNED_WITH_DIRECTIVE = [
    "query($on: Boolean!) { items { id inner { label score @include(if: $on) } } }",
    "query($on: Boolean!) { items { id inner { ...L } } }"
    " fragment L on Inner { label score @include(if: $on) }",
    "query($on: Boolean!) { items { id inner { label ... @include(if: $on) { score } } } }",
]


FAST = strawberry.Schema(Query, execution_context_class=FastExecutionContext)


def run_pinned(document, variables=None):
    """graphql-core's execute with one document object, as our parser cache hands it out."""
    return execute(FAST._schema, document, variable_values=variables, executor_class=FastExecutionContext)


def test_a_document_without_directives_is_planned_once_for_every_request(monkeypatch):
    # given: count the plans made
    planned: list[str] = []
    original = FastExecutionContext._plan_object

    def counting(self, object_type, *args):
        planned.append(object_type.name)
        return original(self, object_type, *args)

    monkeypatch.setattr(FastExecutionContext, "_plan_object", counting)
    document = parse(PINNED)
    expected = graphql_sync(strawberry.Schema(Query)._schema, PINNED)
    # when: three requests with the same document
    results = [run_pinned(document) for _ in range(3)]
    # then: same answers as graphql-core's, and Item planned in the first request only
    assert all(result.data == expected.data and not result.errors for result in results)
    assert planned.count("Item") == 1


@pytest.mark.parametrize("query", PINNED_WITH_DIRECTIVE)
def test_fields_that_variables_include_or_skip_are_planned_per_request(query):
    # given: one document object
    document = parse(query)
    # when
    included = run_pinned(document, {"on": True})
    skipped = run_pinned(document, {"on": False})
    included_again = run_pinned(document, {"on": True})
    # then
    assert included.data["items"][0]["inner"] == {"label": "l0", "score": 0.0}
    assert skipped.data["items"][0]["inner"] == {"label": "l0"}
    assert included_again.data == included.data


async def test_an_execution_leaves_no_reference_cycle():
    """graphql-core binds the executor's methods onto itself; FastExecutionContext breaks
    that cycle, so each request's objects are freed when it ends, not by the cyclic GC."""
    # given: the cyclic collector off, so only reference counting frees anything
    fast = strawberry.Schema(Query, execution_context_class=FastExecutionContext)
    gc.collect()
    earlier = {id(o) for o in gc.get_objects() if isinstance(o, FastExecutionContext)}
    gc.disable()
    try:
        # when
        for _ in range(5):
            result = await fast.execute(QUERIES[2])
            assert result.errors is None
        # then: no executor survived its request
        alive = [o for o in gc.get_objects() if isinstance(o, FastExecutionContext) and id(o) not in earlier]
    finally:
        gc.enable()
    assert alive == []


@strawberry.type
class Person:
    name: str

    @strawberry.field
    def greeting(self) -> str:
        return f"hello {self.name}"

    @strawberry.field
    def caller(self, info: strawberry.Info) -> str:
        return str(info.context["caller"])

    @strawberry.field
    def path_name(self, info: strawberry.Info) -> str:
        return str(info.path.key)  # more of info than its context: only graphql-core's path has it

    @strawberry.field
    def later(self) -> str:
        async def value() -> str:
            return f"later {self.name}"

        return value()  # type: ignore[return-value]

    @strawberry.field
    def failing(self) -> str:
        if self.name == "b":
            raise ValueError("no greeting for b")
        return "fine"


@strawberry.type
class PeopleQuery:
    @strawberry.field
    def people(self) -> list[Person]:
        return [Person(name="a"), Person(name="b")]


PEOPLE_QUERIES = [
    "{ people { name greeting caller } }",
    "{ people { name pathName } }",
    "{ people { name later } }",
    "{ people { name failing } }",
]


def _completed_by_graphql_core(monkeypatch) -> list[str]:
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as Base

    calls: list[str] = []
    original = Base.collect_and_execute_subfields

    def counting(self, return_type, *args, **kwargs):
        calls.append(return_type.name)
        return original(self, return_type, *args, **kwargs)

    monkeypatch.setattr(Base, "collect_and_execute_subfields", counting)
    return calls


@pytest.mark.parametrize("query", PEOPLE_QUERIES)
async def test_planned_resolvers_answer_what_graphql_core_answers(query):
    # given
    plain = strawberry.Schema(PeopleQuery)
    fast = strawberry.Schema(PeopleQuery, execution_context_class=FastExecutionContext)
    context = {"caller": "op-1"}
    # when
    expected = await plain.execute(query, context_value=context)
    actual = await fast.execute(query, context_value=context)
    # then
    assert actual.data == expected.data
    assert [e.formatted for e in actual.errors or []] == [e.formatted for e in expected.errors or []]


async def test_a_synchronous_resolver_reading_the_context_is_planned(monkeypatch):
    # given
    calls = _completed_by_graphql_core(monkeypatch)
    fast = strawberry.Schema(PeopleQuery, execution_context_class=FastExecutionContext)
    # when
    result = await fast.execute(PEOPLE_QUERIES[0], context_value={"caller": "op-1"})
    # then: no Person went through graphql-core's field machinery
    assert result.errors is None
    assert result.data == {
        "people": [
            {"name": "a", "greeting": "hello a", "caller": "op-1"},
            {"name": "b", "greeting": "hello b", "caller": "op-1"},
        ]
    }
    assert "Person" not in calls


@pytest.mark.parametrize(("query", "fallbacks"), list(zip(PEOPLE_QUERIES[1:], (2, 2, 1), strict=True)))
async def test_a_resolver_the_plan_cannot_finish_falls_back(monkeypatch, query, fallbacks, recwarn):
    # given: a resolver that reads info.path, one that returns an awaitable, one that raises
    calls = _completed_by_graphql_core(monkeypatch)
    fast = strawberry.Schema(PeopleQuery, execution_context_class=FastExecutionContext)
    # when
    await fast.execute(query, context_value={"caller": "op-1"})
    gc.collect()
    # then: graphql-core completed each Person the plan could not (only "b" raises), and no
    # coroutine was left un-awaited
    assert calls.count("Person") == fallbacks
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


class RequestContext:
    caller = "op-1"


async def test_a_fallback_keeps_nothing_of_its_request_alive():
    """The plan falls back by raising one shared exception; its traceback must not hold the
    frames (and through them the values and context) of the last request that raised it."""
    import weakref

    # given
    fast = strawberry.Schema(PeopleQuery, execution_context_class=FastExecutionContext)
    context = RequestContext()
    gone = weakref.ref(context)
    gc.disable()
    try:
        # when: each Person falls back (``later`` returns an awaitable: the plan raises _FALLBACK)
        result = await fast.execute(PEOPLE_QUERIES[2], context_value=context)
        assert result.errors is None
        del context, result
        # then: reference counting alone freed the request's context
        assert gone() is None
    finally:
        gc.enable()
