"""Roles and scope over the user directory: `user`, `users`, `registerUser`."""

from __future__ import annotations

import pytest

from tests.conftest import error_codes
from tests.org import REGISTER_USER, USERS, register_input, register_org

USER = "query($id: ID!) { user(id: $id) { userId name scope { branchId } } }"
USERS_PAGE = """
query($scope: ScopeFilterInput, $first: Int!, $after: String) {
  users(scope: $scope, first: $first, after: $after) {
    edges { cursor node { userId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
ALL_IDS = sorted(u["userId"] for u in USERS)


async def user_ids(gql, bearer, scope=None, first=50):
    body = await gql(USERS_PAGE, {"scope": scope, "first": first}, as_=bearer)
    assert "errors" not in body, body
    return [edge["node"]["userId"] for edge in body["data"]["users"]["edges"]]


@pytest.fixture
async def org(gql, admin):
    await register_org(gql, admin)


@pytest.mark.parametrize(
    ("role", "claims", "expected"),
    [
        ("admin", {}, ALL_IDS),
        ("region", {"region_id": "r_apac"}, ["u_jp1", "u_kr1", "u_kr2", "u_kr3"]),
        ("country", {"country_id": "c_kr"}, ["u_kr1", "u_kr2", "u_kr3"]),
        ("branch", {"branch_id": "b_seoul"}, ["u_kr1", "u_kr2"]),
    ],
)
async def test_users_lists_only_the_callers_scope(gql, token, org, role, claims, expected):
    assert await user_ids(gql, token(role, **claims)) == expected


async def test_engine_may_not_list_users(gql, token, org):
    body = await gql(USERS_PAGE, {"first": 10}, as_=token("engine"))
    assert error_codes(body) == ["FORBIDDEN"]


@pytest.mark.parametrize(
    ("role", "claims", "visible", "hidden"),
    [
        ("region", {"region_id": "r_apac"}, "u_jp1", "u_de1"),
        ("country", {"country_id": "c_kr"}, "u_kr3", "u_jp1"),
        ("branch", {"branch_id": "b_seoul"}, "u_kr2", "u_kr3"),
    ],
)
async def test_user_inside_scope_is_read_and_outside_is_forbidden(
    gql, token, org, role, claims, visible, hidden
):
    bearer = token(role, **claims)
    # when
    inside = await gql(USER, {"id": visible}, as_=bearer)
    outside = await gql(USER, {"id": hidden}, as_=bearer)
    # then
    assert inside["data"]["user"]["userId"] == visible
    assert error_codes(outside) == ["FORBIDDEN"]
    assert outside["data"] is None


async def test_forbidden_is_the_same_whether_or_not_the_user_exists(gql, token, org):
    # given
    branch = token("branch", branch_id="b_seoul")
    # when
    other_branch = await gql(USER, {"id": "u_kr3"}, as_=branch)
    nobody = await gql(USER, {"id": "u_nobody"}, as_=branch)
    # then: nothing tells the two apart
    strip = lambda body: [(e["message"], e["extensions"]) for e in body["errors"]]  # noqa: E731
    assert strip(other_branch) == strip(nobody)
    assert error_codes(nobody) == ["FORBIDDEN"]


async def test_admin_learns_that_a_user_is_missing(gql, admin, org):
    body = await gql(USER, {"id": "u_nobody"}, as_=admin)
    assert error_codes(body) == ["NOT_FOUND"]


async def test_engine_may_not_read_a_user(gql, token, org):
    body = await gql(USER, {"id": "u_kr1"}, as_=token("engine"))
    assert error_codes(body) == ["FORBIDDEN"]


async def test_scope_filter_narrows_inside_the_callers_scope(gql, token, org):
    country = token("country", country_id="c_kr")
    assert await user_ids(gql, country, {"branchId": "b_busan"}) == ["u_kr3"]
    assert await user_ids(gql, token("admin"), {"regionId": "r_emea"}) == ["u_de1"]


async def test_a_filter_may_name_the_callers_own_parents(gql, token, org):
    # given: b_seoul lies in c_kr and r_apac
    seoul = token("branch", branch_id="b_seoul")
    # when / then: naming them narrows nothing away
    assert await user_ids(gql, seoul, {"countryId": "c_kr"}) == ["u_kr1", "u_kr2"]
    assert await user_ids(gql, token("country", country_id="c_kr"), {"regionId": "r_apac"}) == [
        "u_kr1",
        "u_kr2",
        "u_kr3",
    ]


@pytest.mark.parametrize(
    ("role", "claims", "scope"),
    [
        ("branch", {"branch_id": "b_seoul"}, {"branchId": "b_busan"}),
        ("country", {"country_id": "c_kr"}, {"countryId": "c_jp"}),
        ("country", {"country_id": "c_kr"}, {"branchId": "b_tokyo"}),
        ("branch", {"branch_id": "b_seoul"}, {"countryId": "c_jp"}),  # not its parent
        ("country", {"country_id": "c_kr"}, {"regionId": "r_emea"}),
        ("region", {"region_id": "r_apac"}, {"teamId": "t_berlin_a"}),
    ],
)
async def test_scope_filter_outside_the_callers_scope_is_forbidden(gql, token, org, role, claims, scope):
    body = await gql(USERS_PAGE, {"scope": scope, "first": 10}, as_=token(role, **claims))
    assert error_codes(body) == ["FORBIDDEN"]


async def test_cursor_pagination_walks_every_user_once(gql, admin, org):
    # given
    seen: list[str] = []
    after = None
    # when
    for _ in range(10):
        body = await gql(USERS_PAGE, {"first": 2, "after": after}, as_=admin)
        page = body["data"]["users"]
        seen += [edge["node"]["userId"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then
    assert seen == ALL_IDS


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_page_size_out_of_range_is_a_schema_mismatch(gql, admin, first):
    body = await gql(USERS_PAGE, {"first": first}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_a_bad_cursor_is_a_schema_mismatch(gql, admin):
    body = await gql(USERS_PAGE, {"first": 2, "after": "%%%"}, as_=admin)
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]


async def test_register_user_is_admin_only(gql, token):
    user = register_input(USERS[0])
    for role, claims in [
        ("region", {"region_id": "r_apac"}),
        ("country", {"country_id": "c_kr"}),
        ("branch", {"branch_id": "b_seoul"}),
        ("engine", {}),
    ]:
        body = await gql(REGISTER_USER, {"input": user}, as_=token(role, **claims))
        assert error_codes(body) == ["FORBIDDEN"], role
    admin_body = await gql(USER, {"id": user["userId"]}, as_=token("admin"))
    assert error_codes(admin_body) == ["NOT_FOUND"]


async def test_register_user_moves_an_existing_user(gql, admin, org):
    # given
    moved = register_input(USERS[0]) | {
        "scope": {"regionId": "r_apac", "countryId": "c_kr", "branchId": "b_busan", "teamId": "t_busan_a"}
    }
    # when
    await gql(REGISTER_USER, {"input": moved}, as_=admin)
    # then
    body = await gql(USER, {"id": "u_kr1"}, as_=admin)
    assert body["data"]["user"]["scope"]["branchId"] == "b_busan"


@pytest.mark.parametrize(
    "change",
    [
        {"userId": "bad id with spaces"},
        {"userId": ""},
        {"name": "   "},
        {"scope": {"regionId": "r", "countryId": "c", "branchId": "b/../x", "teamId": "t"}},
    ],
)
async def test_register_user_refuses_bad_input_and_stores_nothing(gql, admin, change):
    # given
    user = register_input(USERS[0]) | change
    # when
    body = await gql(REGISTER_USER, {"input": user}, as_=admin)
    # then
    assert error_codes(body) == ["E_SCHEMA_MISMATCH"]
    assert await user_ids(gql, admin) == []


async def test_a_page_of_users_costs_one_statement(gql, admin, sql_statements):
    # given: 100 users
    for i in range(100):
        user = {"userId": f"u_{i:03}", "name": f"User {i}", "scope": ("r", "c", "b", "t")}
        await gql(REGISTER_USER, {"input": register_input(user)}, as_=admin)
    sql_statements.reset()
    # when
    body = await gql("{ users(first: 100) { nodes { userId name scope { regionId branchId } } } }", as_=admin)
    # then
    assert len(body["data"]["users"]["nodes"]) == 100
    assert sql_statements.count == 1, sql_statements.statements
