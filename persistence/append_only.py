"""DDL that makes tables append-only in the database itself, not just in our code.

SQLite: BEFORE UPDATE / DELETE triggers abort; a BEFORE INSERT trigger ignores
any insert that would collide with an existing row, so ``INSERT OR REPLACE``
cannot delete-and-reinsert over history. PostgreSQL: a trigger function raises
on UPDATE, DELETE (so ``ON CONFLICT DO UPDATE`` fails too) and TRUNCATE.
"""

from __future__ import annotations

from typing import Literal

from alembic import op

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION trainer_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def make_append_only(
    table: str,
    key_column: str,
    pk_column: str = "seq",
    *,
    also_unique: tuple[str, ...] = (),
    on_collision: Literal["ignore", "abort"] = "ignore",
) -> None:
    """Install the append-only triggers on ``table`` for the current dialect.

    On SQLite an insert that collides with a stored row on ``key_column``, ``pk_column`` or
    ``also_unique`` is ignored (idempotent logs) or, with ``on_collision="abort"``, fails the
    statement: the audit log must never lose an entry silently.
    """
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION trainer_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION trainer_refuse_change()"
        )
        return
    op.execute(
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END"
    )
    collides = " OR ".join(f"{column} = NEW.{column}" for column in (key_column, pk_column, *also_unique))
    action = "IGNORE" if on_collision == "ignore" else f"ABORT, '{table} is append-only: entry exists'"
    op.execute(
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {collides}) "
        f"BEGIN SELECT RAISE({action}); END"
    )


def drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        return
    for name in ("no_update", "no_delete", "no_replace"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_{name}")
