"""A REST client for the tests that checks every response against the generated OpenAPI document.

Each response's status must be documented for its operation, and its JSON body must validate
against the schema the document gives for that status (JSON Schema 2020-12, as OpenAPI 3.1 says);
a response that breaks the contract fails the test that received it. An error body must carry
one of the contract's codes; a 429 or 503 must carry Retry-After.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

import httpx
import jsonschema_rs

OPENAPI = "/operator/openapi.json"
CODES = {
    "E_SCHEMA_MISMATCH",
    "E_VERSION_MISSING",
    "E_SCOPE_MISSING",
    "E_OUT_OF_SCOPE",
    "E_DUPLICATE_SNAPSHOT",
    "E_AGG_CONFLICT",
    "E_RELOAD_FAILED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "RATE_LIMITED",
    "INTERNAL_SERVER_ERROR",
}


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.checked = 0
        self._validators: dict[tuple[str, str, str], Any] = {}
        self._paths = [
            (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in document["paths"]
        ]

    def template(self, path: str) -> str | None:
        # literal segments first: /releases/rollback before /releases/{x}
        matches = [template for pattern, template in self._paths if pattern.match(path)]
        return min(matches, key=lambda t: t.count("{")) if matches else None

    def _validator(self, template: str, method: str, status: str) -> Any:
        key = (template, method, status)
        if key not in self._validators:
            responses = self.document["paths"][template][method]["responses"]
            assert status in responses, f"{method.upper()} {template}: status {status} is not documented"
            schema = responses[status].get("content", {}).get("application/json", {}).get("schema", {})
            self._validators[key] = jsonschema_rs.validator_for(
                {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": self.document.get("components", {}),
                    **schema,
                }
            )
        return self._validators[key]

    def check(self, response: httpx.Response) -> None:
        path = response.request.url.path
        method = response.request.method.lower()
        body = response.json() if response.content else None
        if response.status_code >= 400:
            assert isinstance(body, dict) and set(body) == {"error"}, response.text
            assert body["error"]["code"] in CODES, response.text
            assert set(body["error"]) == {"code", "message", "details"}, response.text
        if response.status_code in (429, 503):
            assert response.headers.get("retry-after", "").isdigit(), response.headers
        template = self.template(path)
        if template is None or method not in self.document["paths"][template]:
            assert response.status_code in (404, 405), f"{method} {path} is not in the document"
            return
        validator = self._validator(template, method, str(response.status_code))
        errors = [error.message for error in validator.iter_errors(body)]
        assert not errors, f"{method.upper()} {path} {response.status_code}: {errors}: {response.text}"
        self.checked += 1


class RestClient:
    """``rest.get(path, as_=token)`` etc.; every answer is checked against the contract."""

    def __init__(self, http: httpx.AsyncClient, contract: Contract) -> None:
        self.http = http
        self.contract = contract

    async def request(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if as_ is not None:
            sent["Authorization"] = f"Bearer {as_}"
        response = await self.http.request(method, path, headers=sent, **kw)
        self.contract.check(response)
        return response

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kw)

    @cached_property
    def paths(self) -> list[str]:
        return list(self.contract.document["paths"])


async def rest_client(http: httpx.AsyncClient) -> RestClient:
    response = await http.get(OPENAPI)
    assert response.status_code == 200, response.text
    return RestClient(http, Contract(response.json()))


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])
