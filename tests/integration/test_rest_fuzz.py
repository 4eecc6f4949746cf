"""schemathesis fuzzes the generated OpenAPI document against a real server on loopback.

Every operation of /operator/openapi.json, with data that fits the document (positive), sent with
the token of a role the operation names (its ``x-roles``), and data that does not (negative), sent
with the token of any of the five roles. Nothing may
answer 5xx, every answer must conform to the document (status, content type, headers, body), and
every error must carry one of the contract's codes. Bounded: TRAINER_FUZZ_EXAMPLES cases per
operation and mode (default 10) and TRAINER_FUZZ_SECONDS in all (default 75); the number of
requests made is printed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.auth import Role, issue_token
from tests.conftest import make_settings
from tests.live import live_server
from tests.rest_client import CODES

EXAMPLES = int(os.environ.get("TRAINER_FUZZ_EXAMPLES", "10"))
BUDGET_SECONDS = float(os.environ.get("TRAINER_FUZZ_SECONDS", "75"))
CLAIMS: dict[str, dict[str, str]] = {
    "admin": {},
    "region": {"region_id": "r_apac"},
    "country": {"country_id": "c_kr"},
    "branch": {"branch_id": "b_seoul"},
    "engine": {},
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_contract(database_url: str, capsys: Any) -> None:
    # given: a server, and a token per role
    config = make_settings(database_url)
    tokens = {
        role: issue_token(config, sub=f"fuzz-{role}", role=Role(role), ttl_seconds=3600, **claims)
        for role, claims in CLAIMS.items()
    }
    with live_server(database_url) as base:
        schema = schemathesis.openapi.from_url(f"{base}/operator/openapi.json")
        session = requests.Session()
        deadline = time.monotonic() + BUDGET_SECONDS
        sent: dict[str, int] = {}
        statuses: dict[int, int] = {}
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        # when: every operation, both modes, every role
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # positive cases as the roles the operation names (x-roles), negative ones as anyone
                allowed = operation.definition.raw.get("x-roles", list(tokens))
                roles = allowed if mode is GenerationMode.POSITIVE else list(tokens)

                @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(roles))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def fuzz(case: Any, role: str) -> None:
                    if time.monotonic() > deadline:
                        return
                    headers = {"Authorization": f"Bearer {tokens[role]}"}
                    response = case.call(base_url=base, session=session, headers=headers, timeout=30)
                    label = case.operation.label
                    sent[label] = sent.get(label, 0) + 1
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    # then
                    case.validate_response(response, checks=CHECKS, headers=headers)
                    if response.status_code >= 400:
                        error = response.json()["error"]
                        assert error["code"] in CODES, response.text
                    if response.status_code == 429:
                        assert response.headers["Retry-After"].isdigit()

                fuzz()
    total = sum(sent.values())
    with capsys.disabled():  # shown in every run, not only with -s
        print(
            f"\nschemathesis: {total} requests, {len(sent)} of {len(operations)} operations, "
            f"statuses {dict(sorted(statuses.items()))}"
        )
    assert len(sent) == len(operations), "the time budget ran out before every operation was fuzzed"
    assert total >= len(operations)
