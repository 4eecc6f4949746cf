"""Protection on by default: depth, aliases, tokens, batching, body size, production mode."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from app.main import create_app
from app.settings import DEV_JWT_SECRET, InsecureSettingsError, Settings
from graphql_schema.documents import expanded_fields
from tests.conftest import error_codes
from tests.org import REGISTER_USER, register_input

LIST_IDS = "{ users(first: 100) { nodes { userId } } }"


def register_mutation(aliases: int) -> str:
    fields = "\n".join(
        f'a{i}: registerUser(input: {{userId: "u_{i}", name: "n", scope: '
        f'{{regionId: "r", countryId: "c", branchId: "b", teamId: "t"}}}}) {{ userId }}'
        for i in range(aliases)
    )
    return f"mutation {{\n{fields}\n}}"


async def stored_ids(gql, admin):
    body = await gql(LIST_IDS, as_=admin)
    return [node["userId"] for node in body["data"]["users"]["nodes"]]


async def test_too_deep_a_query_is_refused_before_execution(gql, admin, client_with, token):
    # given: depth 1 allowed (root fields are depth 0); the mutation reaches depth 2, the query 4
    strict = await client_with(max_query_depth=1)
    deep = """mutation { registerUser(input: {userId: "u_deep", name: "n", scope:
        {regionId: "r", countryId: "c", branchId: "b", teamId: "t"}}) { scope { regionId } } }"""
    deep_users = "{ users { edges { node { scope { regionId } } } } }"
    # when
    response = await strict.post(
        "/graphql", json={"query": deep_users}, headers={"Authorization": f"Bearer {admin}"}
    )
    mutation = await strict.post(
        "/graphql", json={"query": deep}, headers={"Authorization": f"Bearer {admin}"}
    )
    # then
    assert error_codes(response.json()) == ["E_SCHEMA_MISMATCH"]
    assert "depth" in response.json()["errors"][0]["message"]
    assert response.json()["data"] is None
    assert error_codes(mutation.json()) == ["E_SCHEMA_MISMATCH"]
    assert await stored_ids(gql, admin) == []  # the mutation never ran


async def test_too_many_aliases_are_refused_before_execution(gql, admin):
    # given: the default limit is 15 aliases
    # when
    body = await gql(register_mutation(16), as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert await stored_ids(gql, admin) == []


async def test_aliases_within_the_limit_run(gql, admin):
    body = await gql(register_mutation(3), as_=admin)
    assert "errors" not in body
    assert await stored_ids(gql, admin) == ["u_0", "u_1", "u_2"]


async def test_too_many_tokens_are_refused_before_execution(gql, admin, client_with):
    # given: a 60-token limit, and a 2-alias mutation of ~70 tokens
    strict = await client_with(max_tokens=60)
    # when
    response = await strict.post(
        "/graphql", json={"query": register_mutation(2)}, headers={"Authorization": f"Bearer {admin}"}
    )
    # then
    assert error_codes(response.json()) == ["E_SCHEMA_MISMATCH"]
    assert "token" in response.json()["errors"][0]["message"].lower()
    assert await stored_ids(gql, admin) == []


def fragment_chain(length: int) -> str:
    """F1 spreads F2 twice, F2 spreads F3 twice, ...: 2^length fields in ~30·length characters."""
    links = "\n".join(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(1, length))
    return f"{{ ...F1 }}\n{links}\nfragment F{length} on Query {{ __typename }}"


def test_expanded_fields_counts_each_spread_without_walking_it_again():
    assert expanded_fields(parse(fragment_chain(3))) == 4
    assert expanded_fields(parse(fragment_chain(60))) == 2**59
    assert expanded_fields(parse("{ me { sub role } a: me { sub } }")) == 5


async def test_a_document_whose_fragments_expand_past_the_limit_is_refused(client, admin):
    # given: 20 links double 19 times: 524,288 fields from a 700-character document
    query = fragment_chain(20)
    # when
    anonymous = await client.post("/graphql", json={"query": query})
    response = await client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {admin}"}
    )
    # then: without a token it is not even parsed; with one, refused before validation walks it
    # (which would take seconds, doubling per link)
    assert error_codes(anonymous.json()) == ["UNAUTHENTICATED"]
    assert error_codes(response.json()) == ["E_SCHEMA_MISMATCH"]
    assert "expands to 524288 fields" in response.json()["errors"][0]["message"]


async def test_batched_requests_are_refused(client, admin):
    response = await client.post(
        "/graphql",
        json=[{"query": LIST_IDS}, {"query": LIST_IDS}],
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 400


async def test_queries_over_get_are_answered_and_mutations_refused(client, admin, gql):
    # given
    headers = {"Authorization": f"Bearer {admin}"}
    # when
    query = await client.get("/graphql", params={"query": LIST_IDS}, headers=headers)
    mutation = await client.get("/graphql", params={"query": register_mutation(1)}, headers=headers)
    # then: a mutation over GET is 405 (GraphQL over HTTP) and changes nothing
    assert query.status_code == 200 and query.json() == {"data": {"users": {"nodes": []}}}
    assert mutation.status_code == 405 and mutation.headers["allow"] == "GET, POST"
    assert error_codes(mutation.json()) == ["E_SCHEMA_MISMATCH"]
    assert await stored_ids(gql, admin) == []


async def test_oversized_body_is_refused_with_413(client_with, admin, gql):
    # given
    small = await client_with(max_body_bytes=2048)
    padding = "x" * 4096
    query = REGISTER_USER
    variables = {"input": register_input({"userId": "u_big", "name": padding, "scope": ("r", "c", "b", "t")})}
    # when
    response = await small.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {admin}"},
    )
    # then
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "E_SCHEMA_MISMATCH"
    assert "2048" in response.json()["error"]["message"]
    assert await stored_ids(gql, admin) == []


async def test_oversized_chunked_body_is_refused_with_413(client_with, admin):
    small = await client_with(max_body_bytes=2048)

    async def chunks():
        for _ in range(4):
            yield b" " * 1024

    response = await small.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {admin}", "content-type": "application/json"},
    )
    assert response.status_code == 413


async def introspect(http, admin):
    query = {"query": "{ __schema { queryType { name } } }"}
    return (await http.post("/graphql", json=query, headers={"Authorization": f"Bearer {admin}"})).json()


async def test_development_serves_graphiql_and_introspection(client, admin):
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "GraphiQL" in page.text
    body = await introspect(client, admin)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_production_turns_off_graphiql_and_introspection(client_with, admin):
    # given
    prod = await client_with(env="production")
    # when
    page = await prod.get("/graphql", headers={"accept": "text/html"})
    body = await introspect(prod, admin)
    # then
    assert page.status_code != 200 or "GraphiQL" not in page.text
    assert set(error_codes(body)) == {"E_SCHEMA_MISMATCH"}
    assert "introspection" in body["errors"][0]["message"].lower()
    assert body.get("data") is None


@pytest.mark.parametrize("secret", [DEV_JWT_SECRET, "short"])
def test_production_refuses_a_weak_jwt_secret(secret):
    settings = Settings(env="production", jwt_secret=secret, database_url="sqlite+aiosqlite:///:memory:")
    with pytest.raises(InsecureSettingsError):
        create_app(settings)


@pytest.mark.parametrize("operation_name", [None, "Page"])
async def test_each_document_is_validated_once(client, admin, monkeypatch, operation_name):
    """The limit rules must be the same on every request, or validation is never cached; and
    Strawberry must not validate again after us (it does whenever the extension leaves
    ``pre_execution_errors`` at None, which tripled the cost of a log once)."""
    import strawberry.schema.schema as strawberry_schema

    from graphql_schema import documents

    # given: every validation counted, ours and Strawberry's own
    validations: list[object] = []
    for module in (documents, strawberry_schema):
        real = vars(module)["validate_document"]

        def counting(schema, document, rules, real=real):
            validations.append(document)
            return real(schema, document, rules)

        monkeypatch.setattr(module, "validate_document", counting)
    query = "query Page { me { sub } users(first: 3) { nodes { userId } } }"
    request = {"query": query, "operationName": operation_name}
    # when
    answers = [
        (await client.post("/graphql", json=request, headers={"Authorization": f"Bearer {admin}"})).json()
        for _ in range(3)
    ]
    # then
    assert all(answer["data"]["me"] and "errors" not in answer for answer in answers)
    assert len(validations) == 1


async def test_a_client_that_leaves_before_its_body_is_not_a_server_error(app, admin):
    """wrk and browsers close connections mid-request; that is nobody's error to log as a 500."""
    # given: a POST whose client disconnects half-way through its body
    sent: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"query": "{ me', "more_body": True},
        {"type": "http.disconnect"},
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"64"),
            (b"authorization", f"Bearer {admin}".encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # when: no exception escapes the app
    await app(scope, receive, send)
    # then: no 500
    assert sent and sent[0]["status"] != 500
