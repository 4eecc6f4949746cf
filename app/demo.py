"""Demo data for a first look in GraphiQL: a small organisation of users."""

from __future__ import annotations

from app.auth import Principal, Role
from app.scope import Scope
from app.services import directory
from app.services.audit import AuditLog
from app.settings import Settings
from persistence.db import Database

DEMO_USERS = [
    ("u_01", "Mina Park", Scope("r_apac", "c_kr", "b_seoul_01", "t_seoul_01_a")),
    ("u_02", "Joon Lee", Scope("r_apac", "c_kr", "b_seoul_01", "t_seoul_01_b")),
    ("u_03", "Aiko Sato", Scope("r_apac", "c_jp", "b_tokyo_01", "t_tokyo_01_a")),
    ("u_04", "Lena Vogel", Scope("r_emea", "c_de", "b_berlin_01", "t_berlin_01_a")),
]
# The demo data is audited like any change; this is who the log says made it.
SEEDER = Principal(sub="demo-seed", role=Role.ADMIN)


async def seed_demo(settings: Settings) -> None:
    db = Database(settings)
    audit_log = AuditLog(settings.audit_secret)
    try:
        for user_id, name, scope in DEMO_USERS:
            new = directory.NewUser(user_id, name, scope)
            await directory.register_user(db, audit_log, SEEDER, new, request_id="demo-seed")
    finally:
        await db.dispose()
