"""PostgreSQL: room on the live counters' pages, so that updating a counter writes no index entry.

The deriver updates its counters in place (``live_user_day`` and ``live_path_day``: INSERT ... ON
CONFLICT DO UPDATE per fold) and a build rebases a day's path sums. None of those updates changes an
indexed value, so when the row's page has room PostgreSQL writes the new version beside the old one
as a heap-only tuple (HOT), with no new entry in any index. With the default fillfactor (100) the
pages are full and every update writes an entry in each of the table's indexes. 70 leaves room for
a few updates per row between vacuums. SQLite updates rows in place: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATED_IN_PLACE = ("live_user_day", "live_path_day")
FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in UPDATED_IN_PLACE:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in UPDATED_IN_PLACE:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
