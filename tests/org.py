"""A small organisation used by the directory and scope tests.

r_apac ─ c_kr ─ b_seoul ─ t_seoul_a: u_kr1, u_kr2
       │      └ b_busan ─ t_busan_a: u_kr3
       └ c_jp ─ b_tokyo ─ t_tokyo_a: u_jp1
r_emea ─ c_de ─ b_berlin ─ t_berlin_a: u_de1
"""

from __future__ import annotations

from typing import Any

USERS: list[dict[str, Any]] = [
    {"userId": "u_kr1", "name": "Mina", "scope": ("r_apac", "c_kr", "b_seoul", "t_seoul_a")},
    {"userId": "u_kr2", "name": "Joon", "scope": ("r_apac", "c_kr", "b_seoul", "t_seoul_a")},
    {"userId": "u_kr3", "name": "Sora", "scope": ("r_apac", "c_kr", "b_busan", "t_busan_a")},
    {"userId": "u_jp1", "name": "Aiko", "scope": ("r_apac", "c_jp", "b_tokyo", "t_tokyo_a")},
    {"userId": "u_de1", "name": "Lena", "scope": ("r_emea", "c_de", "b_berlin", "t_berlin_a")},
]

REGISTER_USER = """
mutation($input: RegisterUserInput!) {
  registerUser(input: $input) { userId name scope { regionId countryId branchId teamId } }
}
"""


def register_input(user: dict[str, Any]) -> dict[str, Any]:
    region, country, branch, team = user["scope"]
    return {
        "userId": user["userId"],
        "name": user["name"],
        "scope": {"regionId": region, "countryId": country, "branchId": branch, "teamId": team},
    }


async def register_org(gql: Any, admin: str) -> None:
    for user in USERS:
        body = await gql(REGISTER_USER, {"input": register_input(user)}, as_=admin)
        assert "errors" not in body, body
