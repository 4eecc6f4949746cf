"""Bearer JWT identity: who is calling, with which role and scope ids."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from app.errors import Unauthenticated
from app.settings import Settings
from app.validation import is_id


class Role(StrEnum):
    ADMIN = "admin"
    REGION = "region"
    COUNTRY = "country"
    BRANCH = "branch"
    ENGINE = "engine"


# The scope claim each operator role must carry (CONTRACT.md, "Identity and roles").
REQUIRED_SCOPE_CLAIM: dict[Role, str | None] = {
    Role.ADMIN: None,
    Role.REGION: "regionId",
    Role.COUNTRY: "countryId",
    Role.BRANCH: "branchId",
    Role.ENGINE: None,
}


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    role: Role
    region_id: str | None = None
    country_id: str | None = None
    branch_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def issue_token(
    settings: Settings,
    *,
    sub: str,
    role: Role,
    region_id: str | None = None,
    country_id: str | None = None,
    branch_id: str | None = None,
    ttl_seconds: int = 3600,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "role": role.value, "iat": now, "exp": now + ttl_seconds}
    for name, value in (
        ("regionId", region_id),
        ("countryId", country_id),
        ("branchId", branch_id),
    ):
        if value is not None:
            claims[name] = value
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


_VERIFIED_MAX = 4096
# A scope claim names a node as the logs do (is_id); sub is recorded as the sender of every
# log and audit entry (128 characters, as the columns hold).
_CLAIM_SUB = re.compile(r"[^\x00-\x20\x7f\ud800-\udfff][^\x00-\x1f\x7f\ud800-\udfff]{0,127}")
# (secret, token) -> (principal, exp): a token's signature is checked once, its expiry every time.
_verified: dict[tuple[str, str], tuple[Principal, float]] = {}


def principal_from_token(settings: Settings, token: str) -> Principal:
    """Verify a bearer token (HS256). Verifying costs ~0.1 ms, a fifth of a whole small
    request, so a verified token is remembered until it expires."""
    key = (settings.jwt_secret, token)
    known = _verified.get(key)
    if known is not None:
        if known[1] > time.time():
            return known[0]
        del _verified[key]
        raise Unauthenticated("token expired: get a new one")
    principal, expires = _verify(settings, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.pop(next(iter(_verified)))
    _verified[key] = (principal, expires)
    return principal


def _invalid(error: jwt.InvalidTokenError) -> str:
    """A fixed message per kind of failure: never the decoder's own text, which may quote the
    token's bytes or the library's internals."""
    if isinstance(error, jwt.MissingRequiredClaimError) and error.claim in ("sub", "role", "exp"):
        return f"invalid token: the {error.claim} claim is missing"
    for kind, message in _INVALID:
        if isinstance(error, kind):
            return message
    return "invalid token: not a well-formed signed JWT"


_INVALID: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.InvalidSignatureError, "invalid token: signature verification failed"),
    (jwt.InvalidAlgorithmError, "invalid token: the signing algorithm is not allowed"),
    (jwt.ImmatureSignatureError, "invalid token: not valid yet (iat or nbf in the future)"),
)


def _verify(settings: Settings, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            options={"require": ["sub", "role", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token expired: get a new one") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(_invalid(exc)) from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise Unauthenticated(f"invalid token: unknown role {claims['role']!r}") from exc
    needed = REQUIRED_SCOPE_CLAIM[role]
    if needed is not None and not isinstance(claims.get(needed), str):
        raise Unauthenticated(f"invalid token: role {role.value} needs the {needed} claim")
    scope = {k: claims.get(k) for k in ("regionId", "countryId", "branchId")}
    for name, value in scope.items():
        if value is not None and not is_id(value):
            raise Unauthenticated(f"invalid token: {name} must be an id (letters, digits, '_ . : -')")
    if not isinstance(claims["sub"], str) or not _CLAIM_SUB.fullmatch(claims["sub"]):
        raise Unauthenticated("invalid token: sub must be 1-128 characters, no control characters")
    principal = Principal(
        sub=claims["sub"],
        role=role,
        region_id=scope["regionId"],
        country_id=scope["countryId"],
        branch_id=scope["branchId"],
    )
    return principal, float(claims["exp"])


def principal_from_header(settings: Settings, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return principal_from_token(settings, token.strip())
