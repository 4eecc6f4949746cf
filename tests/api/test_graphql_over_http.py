"""GraphQL over HTTP: the two media types, GET, refusals as JSON with a code, the token before
anything else, and no schema hints (suggestions, decoder internals) in any answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import error_codes
from tests.org import REGISTER_USER

TYPENAME = "{ __typename }"
ME = "{ me { sub } }"
MISSING_USER = '{ user(id: "u_nobody") { userId } }'
COERCION = "query Q($id: ID!) { user(id: $id) { userId } }"
INTROSPECTION = "{ __schema { queryType { name } } }"
RESPONSE_JSON = "application/graphql-response+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(client, body, token=None, accept=None):
    headers = bearer(token) if token else {}
    if accept:
        headers["accept"] = accept
    return await client.post("/graphql", json=body, headers=headers)


async def test_graphql_response_json_is_served_when_asked_for(client, admin):
    # when
    response = await post(client, {"query": ME}, admin, accept=RESPONSE_JSON)
    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{RESPONSE_JSON}; charset=utf-8"
    assert response.json() == {"data": {"me": {"sub": "admin-test"}}}


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/html", "application/json"),  # names neither: the default, as the spec allows
        (f"{RESPONSE_JSON}, application/json;q=0.9", RESPONSE_JSON),
        (f"application/json, {RESPONSE_JSON}", RESPONSE_JSON),  # a tie goes to the newer type
        (f"application/json, {RESPONSE_JSON};q=0.5", "application/json"),
        (f"{RESPONSE_JSON};q=0", "application/json"),
    ],
)
async def test_the_accept_header_chooses_the_media_type(client, admin, accept, served):
    response = await post(client, {"query": TYPENAME}, admin, accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == served


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"query": "{"}, "parse"),
        ({"query": "{ noSuchField }"}, "validation"),
        ({"query": COERCION, "variables": {"id": None}}, "variable coercion"),
        ({"query": "{ me { sub } } { me { role } }"}, "no operation chosen"),
    ],
)
async def test_request_errors_are_400_without_data_in_graphql_response_json(client, admin, body, what):
    # when
    strict = await post(client, body, admin, accept=RESPONSE_JSON)
    legacy = await post(client, body, admin, accept="application/json")
    # then: execution never started, so no data entry; application/json answers as before
    assert strict.status_code == 400, what
    assert "data" not in strict.json()
    assert error_codes(strict.json()) and set(error_codes(strict.json())) == {"E_SCHEMA_MISMATCH"}
    assert legacy.status_code == 200
    assert legacy.json()["data"] is None
    assert set(error_codes(legacy.json())) == {"E_SCHEMA_MISMATCH"}


async def test_a_field_error_once_execution_started_is_200_with_data(client, admin):
    # when: user(id) is non-null, so its NOT_FOUND makes data null, but execution did start
    response = await post(client, {"query": MISSING_USER}, admin, accept=RESPONSE_JSON)
    # then
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert error_codes(response.json()) == ["NOT_FOUND"]


@pytest.mark.parametrize("query", [TYPENAME, INTROSPECTION, ME, "{"])
async def test_every_operation_needs_a_token_checked_before_parsing(client, query):
    # when
    legacy = await post(client, {"query": query})
    strict = await post(client, {"query": query}, accept=RESPONSE_JSON)
    # then: introspection and __typename too, and a broken document is not even parsed
    assert legacy.status_code == 200
    assert legacy.json() == {
        "data": None,
        "errors": [
            {
                "message": "missing Authorization: Bearer <token> header",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ],
    }
    assert strict.status_code == 401
    assert strict.headers["www-authenticate"] == "Bearer"
    assert "data" not in strict.json()
    assert error_codes(strict.json()) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    "token",
    [
        "abc.def.ghi",  # base64 of bytes that are not UTF-8
        "eyJhbGciOiJIUzI1NiJ9.e30",  # two segments
        "bm90IGpzb24.e30.c2ln",  # a header that is not JSON
        "\u00e9t\u00e9",
    ],
)
async def test_a_malformed_token_gets_a_fixed_message(client, token):
    # when
    response = await client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}".encode()}
    )
    # then
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    assert response.json()["errors"][0]["message"] == "invalid token: not a well-formed signed JWT"


async def test_queries_over_get_take_variables_as_json(client, admin):
    # when
    response = await client.get(
        "/graphql",
        params={"query": COERCION, "variables": '{"id": "u_nobody"}', "operationName": "Q"},
        headers={**bearer(admin), "accept": RESPONSE_JSON},
    )
    bad = await client.get("/graphql", params={"query": COERCION, "variables": "{"}, headers=bearer(admin))
    # then
    assert response.status_code == 200
    assert error_codes(response.json()) == ["NOT_FOUND"]
    assert bad.status_code == 400
    assert error_codes(bad.json()) == ["E_SCHEMA_MISMATCH"]


async def test_a_mutation_over_get_is_405_and_runs_nothing(client, admin, gql):
    # when
    response = await client.get(
        "/graphql",
        params={"query": REGISTER_USER, "variables": '{"input": {}}'},
        headers={**bearer(admin), "accept": RESPONSE_JSON},
    )
    # then
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"].startswith(RESPONSE_JSON)
    assert error_codes(response.json()) == ["E_SCHEMA_MISMATCH"]


@pytest.mark.parametrize(
    ("method", "headers", "content", "status"),
    [
        ("GET", {"accept": "application/json"}, None, 400),  # no query (and not a browser)
        ("PUT", {"content-type": "application/json"}, b'{"query": "{ me { sub } }"}', 405),
        ("DELETE", {}, None, 405),
        ("POST", {}, b'{"query": "{ me { sub } }"}', 415),  # no content type
        ("POST", {"content-type": "text/plain"}, b'{"query": "{ me { sub } }"}', 415),
        ("POST", {"content-type": "application/json; charset=latin-1"}, b'{"query": "{ me { sub } }"}', 415),
        ("POST", {"content-type": "multipart/form-data; boundary=x"}, b"--x\r\n\r\n--x--\r\n", 415),
        ("POST", {"content-type": "application/json"}, b"", 400),
        ("POST", {"content-type": "application/json"}, b'{"query": "{ me { sub } }"', 400),
        ("POST", {"content-type": "application/json"}, b'{"qeury": "{ me { sub } }"}', 400),
        ("POST", {"content-type": "application/json"}, b'{"query": "{ me { sub } }", "extensions": 1}', 400),
        ("POST", {"content-type": "application/json"}, b'{"query": "{ me { sub } }", "variables": []}', 400),
        ("POST", {"content-type": "application/json"}, b'[{"query": "{ me { sub } }"}]', 400),
    ],
)
async def test_every_refusal_is_json_with_a_code(client, admin, method, headers, content, status):
    # when
    response = await client.request(method, "/graphql", content=content, headers={**bearer(admin), **headers})
    # then
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert error_codes(response.json()) == ["E_SCHEMA_MISMATCH"]
    assert "data" not in response.json()


async def test_graphiql_is_still_served_to_a_browser(client):
    page = await client.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and "GraphiQL" in page.text


async def test_a_refused_websocket_handshake_is_json_with_a_code(app):
    # given: a handshake from a page of another origin (no origin is allowed by default), on a
    # server that can answer a handshake with an HTTP response (ASGI websocket.http.response)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "websocket",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "subprotocols": ["graphql-transport-ws"],
        "headers": [(b"host", b"testserver"), (b"origin", b"http://elsewhere.example")],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    # when
    await app(scope, receive, send)
    # then
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    assert start["type"] == "websocket.http.response.start" and start["status"] == 403
    assert error_codes(orjson.loads(body)) == ["FORBIDDEN"]


UNKNOWN_INPUT_FIELD = """mutation { registerUser(input: {userId: "u_1", name: "n", nam: "x",
  scope: {regionId: "r", countryId: "c", branchId: "b", teamId: "t", teamid: "t"}}) { userId } }"""
UNKNOWN_ARGUMENT = '{ user(idd: "u_1") { userId } }'
UNKNOWN_FIELD = "{ me { su } }"
UNKNOWN_TYPE = "query Q($s: ScopeFilterInputt) { me { sub } }"
UNKNOWN_ENUM = '{ ranking(level: BRANCH, date: "2026-01-01", by: AVG_XP_TOTL) { rank } }'
UNKNOWN_FRAGMENT_TYPE = "{ me { ...F } } fragment F on Principall { sub }"


@pytest.mark.parametrize(
    "body",
    [
        {"query": UNKNOWN_INPUT_FIELD},
        {
            "query": REGISTER_USER,
            "variables": {
                "input": {
                    "userId": "u_1",
                    "name": "n",
                    "nam": "x",
                    "scope": {"regionId": "r", "countryId": "c", "branchId": "b", "teamid": "t"},
                }
            },
        },
        {"query": UNKNOWN_ARGUMENT},
        {"query": UNKNOWN_FIELD},
        {"query": UNKNOWN_TYPE},
        {"query": UNKNOWN_ENUM},
        {"query": UNKNOWN_FRAGMENT_TYPE},
        {
            "query": 'query Q($by: RankBy!) { ranking(level: BRANCH, date: "2026-01-01", by: $by) { rank } }',
            "variables": {"by": "AVG_XP_TOTL"},
        },
    ],
)
async def test_no_suggestions_anywhere(client, admin, body):
    # when
    response = await post(client, body, admin)
    # then
    messages = [error["message"] for error in response.json()["errors"]]
    assert messages and set(error_codes(response.json())) == {"E_SCHEMA_MISMATCH"}
    assert not [message for message in messages if "Did you mean" in message], messages


UPDATE_LIMITS = "mutation { updateLimits(input: {aiCallsPerMinute: 1}) { aiCallsPerMinute } }"
LIMITS = "{ limits { aiCallsPerMinute } }"


async def test_a_rate_limit_refusal_is_429_without_data_in_graphql_response_json(client, admin, token):
    # given: one root field per minute for engines, and an engine that spent it
    assert "errors" not in (await post(client, {"query": UPDATE_LIMITS}, admin)).json()
    engine = token("engine")
    assert "errors" not in (await post(client, {"query": LIMITS}, engine, accept=RESPONSE_JSON)).json()
    # when
    strict = await post(client, {"query": LIMITS}, engine, accept=RESPONSE_JSON)
    legacy = await post(client, {"query": LIMITS}, engine)
    # then: refused before execution
    assert strict.status_code == 429
    assert int(strict.headers["retry-after"]) == strict.json()["errors"][0]["extensions"]["retryAfterSeconds"]
    assert "data" not in strict.json()
    assert error_codes(strict.json()) == ["RATE_LIMITED"]
    assert legacy.status_code == 200 and legacy.json()["data"] is None
    assert error_codes(legacy.json()) == ["RATE_LIMITED"]


SUMMARY = "query($u: String!) { quizSummary(userId: $u) { totalQuizzes } }"
TOGGLE = "mutation($k: String!) { setFeatureToggle(key: $k, enabled: true) { key } }"


RELOAD = "mutation($t: String!) { hotReload(type: upm, targetId: $t) { targetId } }"


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ('{ quizSummary(userId: "u_1\\u0000") { totalQuizzes } }', None, "NOT_FOUND"),
        (SUMMARY, {"u": "u_1\x00"}, "NOT_FOUND"),
        ('{ user(id: "u_1\\u0000") { name } }', None, "NOT_FOUND"),
        (
            'mutation { setFeatureToggle(key: "quiz_auto_generate\\u0000", enabled: true) { key } }',
            None,
            "NOT_FOUND",
        ),
        (TOGGLE, {"k": "\x00"}, "NOT_FOUND"),
        (RELOAD, {"t": "upm_default_v1\x00"}, "E_RELOAD_FAILED"),
    ],
)
async def test_a_nul_in_an_id_names_nothing_on_every_database(client, admin, query, variables, code):
    """Found by the schema fuzz: PostgreSQL cannot hold a NUL, and these ids with one answered
    INTERNAL_SERVER_ERROR there (SQLite looked them up)."""
    # when
    response = await post(client, {"query": query, "variables": variables}, admin)
    # then: like any id that names nothing
    assert error_codes(response.json()) == [code]


async def test_a_nul_in_a_user_id_is_forbidden_to_a_scoped_operator(client, token):
    response = await post(
        client, {"query": SUMMARY, "variables": {"u": "u\x00"}}, token("branch", branch_id="b_1")
    )
    assert error_codes(response.json()) == ["FORBIDDEN"]


def test_postgresql_refusing_a_nul_is_the_clients_schema_mismatch():
    # given: what SQLAlchemy raises when asyncpg reports SQLSTATE 22021 or 22P05
    from asyncpg.exceptions import CharacterNotInRepertoireError, UntranslatableCharacterError
    from graphql import GraphQLError
    from sqlalchemy.exc import DBAPIError

    from graphql_schema.errors import is_internal, with_code

    for refused in (CharacterNotInRepertoireError("0x00"), UntranslatableCharacterError("\\u0000")):
        error = GraphQLError("boom", original_error=DBAPIError("SELECT", {}, refused))
        # when
        answered = with_code(error)
        # then
        assert not is_internal(error)
        assert answered.extensions == {"code": "E_SCHEMA_MISMATCH"}
        assert "NUL" in answered.message
