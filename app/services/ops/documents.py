"""Ruleset documents: their schema per engine type and their content hash.

Kept free of database and GraphQL imports.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from app.errors import SchemaMismatch
from app.services.ops.catalog import RulesetType
from app.services.upm.ruleset import UpmRuleset

MAX_DOCUMENT_BYTES = 256 * 1024


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(document: Any) -> str:
    return hashlib.sha256(canonical(document)).hexdigest()


def _pydantic_problems(error: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in error.errors()[:10]]


def validate_document(kind: RulesetType, document: Any) -> str:
    """Check a document against its type's schema; returns its declared version."""
    if not isinstance(document, dict):
        raise SchemaMismatch("a ruleset document must be a JSON object", field="document")
    if len(canonical(document)) > MAX_DOCUMENT_BYTES:
        raise SchemaMismatch(
            f"a ruleset document may have at most {MAX_DOCUMENT_BYTES} bytes", field="document"
        )
    if kind is RulesetType.upm:
        try:
            return UpmRuleset.model_validate(document).version
        except ValidationError as exc:
            problems = _pydantic_problems(exc)
            raise SchemaMismatch(
                f"not a valid upm ruleset: {'; '.join(problems)}", field="document", problems=problems
            ) from exc
    version = document.get("version")
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        raise SchemaMismatch(
            "a ruleset document must declare its version: a string of 1-64 characters",
            field="document.version",
        )
    return version
