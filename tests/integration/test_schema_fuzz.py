"""An independent, bounded fuzz of the whole schema (hypothesis-graphql) against a real server.

For every root field of Query and Mutation, documents built from the schema (valid ones, and
invalid ones: wrong types, missing arguments), their arguments inline or sent as variables, each
with the token of a role drawn among all of them, accepting either media type. Whatever the
document, the answer must be no HTTP 5xx, no INTERNAL_SERVER_ERROR, every error with a contract
code in ``extensions.code``, and no "Did you mean" anywhere.

Bounded: ``TRAINER_FUZZ_EXAMPLES`` documents per root field and mode (default 12), from the seed
``TRAINER_FUZZ_SEED`` (default 0, so CI is reproducible; set another to explore further).
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    NameNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    OperationType,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    build_schema,
    parse,
    parse_type,
    print_ast,
    value_from_ast_untyped,
)
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes
from hypothesis_graphql import strategies as gql

from app.errors import DomainError
from graphql_schema.schema import SDL_PATH
from tests.live import live_server

EXAMPLES = int(os.environ.get("TRAINER_FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("TRAINER_FUZZ_SEED", "0"))
SCHEMA: GraphQLSchema = build_schema(SDL_PATH.read_text())
ROOT_FIELDS = [
    (kind, name, bool(field.args))
    for kind, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type))
    for name, field in root.fields.items()  # type: ignore[union-attr]
]
CODES = {cls.code for cls in DomainError.__subclasses__()} - {"INTERNAL_SERVER_ERROR"}
ROLES: dict[str, dict[str, str]] = {
    "admin": {},
    "region": {"region_id": "r_1"},
    "country": {"country_id": "c_1"},
    "branch": {"branch_id": "b_1"},
    "engine": {},
    "engine-bounded": {"branch_id": "b_1"},
}
# both media types: under graphql-response+json a request error is a 4xx, never a 5xx
ACCEPT = ["application/json", "application/graphql-response+json"]
RAISE_LIMITS = """mutation { updateLimits(input: {aiCallsPerMinute: 100000, maxConcurrentSessions: 10000}) {
  aiCallsPerMinute } }"""

# strings are mostly ids the fuzz's own writes use (so documents get past validation into the
# services), then versions, dates and any text (NUL, any plane, long)
_IDS = st.sampled_from(["u_1", "u_2", "r_1", "c_1", "b_1", "t_1", "b_2", "quiz", "1.0"])
_TEXT = st.one_of(_IDS, st.sampled_from(["", " ", "x" * 200, "\x00", "u_1\x00"]), st.text(max_size=20))
_DATES = st.one_of(st.dates().map(lambda d: d.isoformat()), _TEXT)
_DATETIMES = st.one_of(st.datetimes().map(lambda d: d.isoformat()), _TEXT)


def _json_node() -> st.SearchStrategy[ValueNode]:
    leaves: st.SearchStrategy[ValueNode] = st.one_of(
        _TEXT.map(nodes.String),
        st.integers(min_value=-(2**40), max_value=2**40).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.booleans().map(nodes.Boolean),
    )

    def objects(children: st.SearchStrategy[ValueNode]) -> st.SearchStrategy[ValueNode]:
        field = st.tuples(st.text(string.ascii_letters, min_size=1, max_size=8), children)
        return st.one_of(
            st.lists(children, max_size=3).map(nodes.List),
            st.lists(field, max_size=4, unique_by=lambda f: f[0]).map(
                lambda fields: nodes.Object([_object_field(name, value) for name, value in fields])
            ),
        )

    return st.recursive(leaves, objects, max_leaves=8)


def _object_field(name: str, value: ValueNode) -> ObjectFieldNode:
    return ObjectFieldNode(name=NameNode(value=name), value=value)


SCALARS = {
    "String": _TEXT.map(nodes.String),
    "ID": _TEXT.map(nodes.String),
    "Date": _DATES.map(nodes.String),
    "DateTime": _DATETIMES.map(nodes.String),
    "JSON": _json_node(),
}


def with_variables(document: str) -> tuple[str, dict[str, Any]]:
    """The same operation with each root field's arguments sent as variables (JSON values), so
    variable coercion is fuzzed as well as literals."""
    ast = parse(document)
    operation = ast.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    root = SCHEMA.mutation_type if operation.operation == OperationType.MUTATION else SCHEMA.query_type
    assert root is not None
    definitions, values, selections = [], {}, []
    for i, selection in enumerate(operation.selection_set.selections):
        field = root.fields.get(selection.name.value) if isinstance(selection, FieldNode) else None
        if field is None or not isinstance(selection, FieldNode):
            selections.append(selection)
            continue
        arguments = []
        for argument in selection.arguments or ():
            definition = field.args.get(argument.name.value)
            if definition is None:  # an unknown argument (an invalid document) stays as it is
                arguments.append(argument)
                continue
            variable = VariableNode(name=NameNode(value=f"v{i}_{argument.name.value}"))
            definitions.append(
                VariableDefinitionNode(variable=variable, type=parse_type(str(definition.type)))
            )
            values[variable.name.value] = value_from_ast_untyped(argument.value)
            arguments.append(replace(argument, value=variable))
        selections.append(replace(selection, arguments=tuple(arguments)))
    operation = replace(
        operation,
        variable_definitions=tuple(definitions),
        selection_set=replace(operation.selection_set, selections=tuple(selections)),
    )
    return print_ast(replace(ast, definitions=(operation, *ast.definitions[1:]))), values


class Checked:
    """What the fuzz sent, and every answer that broke a rule."""

    def __init__(self) -> None:
        self.operations = 0
        self.through_variables = 0
        self.without_errors = 0
        self.nul_refusals = 0  # PostgreSQL refusing a NUL that no service caught first
        self.by_status: dict[int, int] = {}
        self.codes: dict[str, int] = {}
        self.failures: list[str] = []

    def check(self, document: dict[str, Any], role: str, response: httpx.Response) -> None:
        self.operations += 1
        self.through_variables += "variables" in document
        self.by_status[response.status_code] = self.by_status.get(response.status_code, 0) + 1
        problems = []
        if response.status_code >= 500:
            problems.append(f"HTTP {response.status_code}")
        body = response.json()
        errors = body.get("errors") or ([body["error"]] if "error" in body else [])
        if response.request.headers["accept"] == ACCEPT[1] and ("data" in body) != response.is_success:
            problems.append(f"HTTP {response.status_code} with data: {'data' in body}")
        self.without_errors += not errors
        for error in errors:
            code = (error.get("extensions") or {}).get("code") or error.get("code")
            self.codes[str(code)] = self.codes.get(str(code), 0) + 1
            if code not in CODES:
                problems.append(f"code {code!r}: {error.get('message')}")
            if str(error.get("message")).startswith("a value must not contain NUL"):
                self.nul_refusals += 1
                print(f"NUL refusal ({role}): {document!r}")
            if "Did you mean" in str(error.get("message")):
                problems.append(f"a suggestion: {error.get('message')}")
        if problems:
            self.failures.append(f"{role}: {problems} for {document!r}")


@pytest.fixture
def fuzz_server(database_url: str, token: Any) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    tokens = {role: token(role.split("-")[0], sub=f"fuzz-{role}", **scope) for role, scope in ROLES.items()}
    with live_server(database_url) as base, httpx.Client(base_url=base, timeout=30) as http:
        raised = http.post(
            "/graphql", json={"query": RAISE_LIMITS}, headers={"Authorization": f"Bearer {tokens['admin']}"}
        )
        assert "errors" not in raised.json(), raised.text  # engines are metered: give them room
        yield http, tokens


@pytest.mark.timeout(600)  # bounded by its count; a loaded machine (the CI's twin runs) is slower
def test_the_schema_fuzz_finds_no_server_error_and_no_error_without_a_code(fuzz_server, capsys):
    # given
    http, tokens = fuzz_server
    checked = Checked()
    # when: every root field, valid and invalid documents, every role
    for kind, field, has_arguments in ROOT_FIELDS:
        make = gql.queries if kind == "query" else gql.mutations
        # invalid documents need an argument to get wrong
        for mode in (Mode.POSITIVE, Mode.NEGATIVE) if has_arguments else (Mode.POSITIVE,):
            documents = make(SCHEMA, fields=[field], custom_scalars=SCALARS, mode=mode)

            @seed(SEED)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=False,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate],
            )
            @given(
                document=documents,
                role=st.sampled_from(sorted(ROLES)),
                through_variables=st.booleans(),
                accept=st.sampled_from(ACCEPT),
            )
            def send(document: str, role: str, through_variables: bool, accept: str) -> None:
                body: dict[str, Any] = {"query": document}
                if through_variables:
                    body["query"], body["variables"] = with_variables(document)
                headers = {"Authorization": f"Bearer {tokens[role]}", "Accept": accept}
                checked.check(body, role, http.post("/graphql", json=body, headers=headers))

            send()
    # then
    summary = (
        f"schema fuzz: {checked.operations} operations ({checked.through_variables} through variables) "
        f"over {len(ROOT_FIELDS)} root fields and {len(ROLES)} roles (seed {SEED}); "
        f"{checked.without_errors} answered without an error, {checked.nul_refusals} NUL refusals; "
        f"HTTP statuses {dict(sorted(checked.by_status.items()))}; "
        f"error codes {dict(sorted(checked.codes.items()))}"
    )
    with capsys.disabled():  # shown in every run, not only when the test fails
        print("\n" + summary)
    assert not checked.failures, "\n".join(checked.failures[:20])
