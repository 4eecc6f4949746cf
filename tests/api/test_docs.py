"""Every GraphQL example of the API guides in docs/ runs without errors against the demo data,
and together they call every root field of the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import FieldNode, OperationDefinitionNode, parse, validate

from app.demo import seed_demo
from graphql_schema.schema import build_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDES = ["api-engine.md", "api-dashboard.md", "api-operator.md"]  # the order they run in
BLOCK = re.compile(r"```graphql\n(.*?)```", re.S)
AS = re.compile(r"^# as: (\w+)\n")
CLAIMS = {
    "admin": {},
    "engine": {"sub": "saleslab-1"},
    "region": {"region_id": "r_apac"},
    "country": {"country_id": "c_kr"},
    "branch": {"branch_id": "b_seoul_01"},
}


def examples() -> list[tuple[str, int, str, str]]:
    """(guide, number, role, document) of every example, in order."""
    found = []
    for guide in GUIDES:
        for number, block in enumerate(BLOCK.findall((DOCS / guide).read_text(encoding="utf-8")), 1):
            role = AS.match(block)
            assert role is not None, f"{guide} example {number} does not say `# as: <role>`"
            found.append((guide, number, role.group(1), block))
    return found


def root_fields(document: str) -> set[tuple[str, str]]:
    return {
        (definition.operation.value, selection.name.value)
        for definition in parse(document).definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
        if isinstance(selection, FieldNode)
    }


def test_the_examples_call_every_root_field(settings):
    # given
    schema = build_schema(settings)._schema
    every = {
        (kind, name)
        for kind, root in (
            ("query", schema.query_type),
            ("mutation", schema.mutation_type),
            ("subscription", schema.subscription_type),
        )
        if root is not None
        for name in root.fields
    }
    # when
    shown = set().union(*(root_fields(document) for *_, document in examples()))
    # then
    assert sorted(every - shown) == []


@pytest.mark.timeout(600)
async def test_every_example_runs_without_errors(settings, gql, token):
    # given: the demo's data, as a reader of the docs has it
    await seed_demo(settings)
    schema = build_schema(settings)._schema
    # when / then
    for guide, number, role, document in examples():
        where = f"{guide} example {number}"
        assert role in CLAIMS, f"{where}: unknown role {role}"
        if any(kind == "subscription" for kind, _ in root_fields(document)):
            # POST does not subscribe: checked against the schema (tests/integration runs one live)
            assert validate(schema, parse(document)) == [], where
            continue
        body = await gql(document, as_=token(role, **CLAIMS[role]))
        assert "errors" not in body, f"{where}: {body['errors']}"


def test_the_docs_stand_alone_and_their_links_resolve():
    # given
    readme = DOCS.parent / "README.md"
    pages = [readme, *sorted(DOCS.glob("*.md"))]
    # when
    links = [
        (page, target)
        for page in pages
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
        if "://" not in target
    ]
    # then: nothing points outside the repository, and every local link finds its file
    assert [target for _, target in links if "shared" in target or target.startswith("..")] == []
    assert [(page.name, target) for page, target in links if not (page.parent / target).exists()] == []
