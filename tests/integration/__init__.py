"""Integration tests: what needs more than one app on one database.

Real uvicorn processes (the CLI, subscriptions over a socket, two workers on one database), two
apps or both databases in one test, migrations from empty, the group-commit writer and prepared
statements without the app, tampering in raw SQL past the append-only triggers. They cost from
tens of milliseconds (the writer) to several seconds (starting servers, waiting for a change to
propagate); the tests on both databases need the PostgreSQL server named by DATABASE_URL or
TRAINER_PG_ADMIN_URL (they skip without it, unless TRAINER_REQUIRE_POSTGRES=1).
"""
