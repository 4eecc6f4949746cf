"""Key each aggregate row by its unit's whole path, not the unit id alone.

A team id used under two branches (or a team that moved during the day) was
one row, filed under its latest parents, so one branch's operator saw the
other branch's users in it. Now it is one row per path; every read filters on
the path, so a row never mixes two nodes of the tree.

The aggregates are rebuilt from the snapshots, so existing rows carry over
unchanged (their unit ids were unique per day, hence unique per path too).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = ("region", "country", "branch", "team")


def _path(level: str) -> list[str]:
    return [f"{name}_id" for name in LEVELS[: LEVELS.index(level) + 1]]


def _rekey(level: str, key: list[str]) -> None:
    table = f"agg_{level}"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"ADD CONSTRAINT {table}_pkey PRIMARY KEY ({', '.join(key)})"
        )
        return
    # SQLite cannot change a primary key in place: copy into a table with the new one.
    reflected = sa.Table(table, sa.MetaData(), autoload_with=op.get_bind())
    columns = [sa.Column(c.name, c.type, nullable=c.nullable) for c in reflected.columns]
    op.create_table(f"{table}_new", *columns, sa.PrimaryKeyConstraint(*key))
    names = ", ".join(c.name for c in columns)
    op.execute(f"INSERT INTO {table}_new ({names}) SELECT {names} FROM {table}")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)
    op.create_index(f"ix_{table}_unit_day", table, [f"{level}_id", "day"])


def upgrade() -> None:
    for level in LEVELS[1:]:
        _rekey(level, ["day", *_path(level)])


def downgrade() -> None:
    for level in LEVELS[1:]:
        _rekey(level, ["day", f"{level}_id"])
