"""Settings refuse to run in production on an audit secret that is weak or shared with the JWT key."""

from __future__ import annotations

import pytest

from app.settings import DEV_AUDIT_SECRET, InsecureSettingsError, Settings


@pytest.mark.parametrize(
    "audit_secret",
    [DEV_AUDIT_SECRET, "too-short", "prod-jwt-secret-0123456789-0123456789"],  # the last equals the JWT key
)
def test_production_refuses_a_weak_or_shared_audit_secret(audit_secret):
    settings = Settings(
        env="production",
        jwt_secret="prod-jwt-secret-0123456789-0123456789",
        audit_secret=audit_secret,
        database_url="sqlite+aiosqlite:///:memory:",
    )
    with pytest.raises(InsecureSettingsError, match="TRAINER_AUDIT_SECRET"):
        settings.check_safe()


def test_production_accepts_its_own_audit_secret():
    Settings(
        env="production",
        jwt_secret="prod-jwt-secret-0123456789-0123456789",
        audit_secret="prod-audit-secret-0123456789-0123456789",
        database_url="sqlite+aiosqlite:///:memory:",
    ).check_safe()
