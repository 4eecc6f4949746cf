"""PostgreSQL: room on the live counters' pages, so that updating a counter writes no index entry.

The deriver updates its counters in place (``live_user_day`` and ``live_path_day``: INSERT ... ON
CONFLICT DO UPDATE per fold) and a build rebases a day's path sums. None of those updates changes an
indexed value, so when the row's page has room PostgreSQL writes the new version beside the old one
as a heap-only tuple (HOT), with no new entry in any index. With the default fillfactor (100) the
pages are full and every update writes an entry in each of the table's indexes. A fold updates the
rows of the users and paths with new records (pruning reclaims the old versions on the page): 70
leaves room for that. A build's rebase updates every path row of the day at once: 50 leaves room
for a second version of each (the table has a row per team and day, so the space is small).
SQLite updates rows in place: nothing to do there.

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

FILLFACTOR = {"live_user_day": 70, "live_path_day": 50}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, fillfactor in FILLFACTOR.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in FILLFACTOR:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
