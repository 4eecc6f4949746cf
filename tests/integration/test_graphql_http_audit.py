"""The GraphQL-over-HTTP audit of the reference implementation (npm ``graphql-http``, its
``auditServer``) against a real server on loopback: no warning, no error.

``conformance/`` holds the pinned package (package.json + package-lock.json; ``npm ci`` installs
it, here if CI has not already) and the script that runs the audit and prints its counts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live import live_server

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance"


def _node_and_audit() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the graphql-http audit needs Node.js and npm on PATH (CI has both)")
    if not (CONFORMANCE / "node_modules" / "graphql-http").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CONFORMANCE,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return node


def test_the_graphql_over_http_audit_finds_no_warning_and_no_error(database_url, token, capsys):
    # given: the audit installed, a real server, and an admin token (every request needs one)
    node = _node_and_audit()
    with live_server(database_url) as base:
        # when
        run = subprocess.run(
            [node, str(CONFORMANCE / "audit.mjs"), f"{base}/graphql", token("admin")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    # then
    lines = run.stdout.strip().splitlines()
    with capsys.disabled():  # the counts in every run, not only when the test fails
        print("\ngraphql-http audit:", lines[-2] if len(lines) > 1 else run.stdout, run.stderr)
    counts = json.loads(lines[-1])
    assert counts["must"]["ok"] == counts["must"]["total"] > 0
    assert (counts["warn"], counts["error"]) == (0, 0), run.stdout
    assert counts["ok"] + counts["notice"] == counts["total"]
    assert run.returncode == 0
