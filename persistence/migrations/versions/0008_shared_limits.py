"""Shared limits on PostgreSQL: per-engine buckets and in-flight leases, and the one function
that checks and charges them atomically (for deployments with several workers and no Redis).

The tables are UNLOGGED on PostgreSQL: they hold counters, not records, and a crash resets
them to full buckets and no leases. On SQLite they exist only to keep one schema.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# verdicts as app.coordination.verdicts names them: ok, busy, rate (with the wait), never.
ADMIT = """
CREATE FUNCTION trainer_admit(
    p_key text, p_cost int, p_per_minute int, p_max_in_flight int, p_token text, p_ttl float8,
    p_releases text[]
) RETURNS TABLE (verdict text, wait float8) LANGUAGE plpgsql AS $$
DECLARE
    now_s float8 := extract(epoch FROM clock_timestamp());
    b limit_bucket%ROWTYPE;
    v_tokens float8;
BEGIN
    IF cardinality(p_releases) > 0 THEN
        DELETE FROM limit_lease WHERE token = ANY (p_releases);
    END IF;
    INSERT INTO limit_bucket (key, tokens, capacity, updated)
        VALUES (p_key, p_per_minute, p_per_minute, now_s) ON CONFLICT (key) DO NOTHING;
    -- the bucket's row lock serialises one engine's checks across every worker
    SELECT * INTO b FROM limit_bucket WHERE key = p_key FOR UPDATE;
    DELETE FROM limit_lease WHERE key = p_key AND expires <= now_s;
    IF (SELECT count(*) FROM limit_lease WHERE key = p_key) >= p_max_in_flight THEN
        RETURN QUERY SELECT 'busy'::text, 0::float8;
        RETURN;
    END IF;
    IF p_cost > 0 THEN
        v_tokens := b.tokens;
        IF b.capacity <> p_per_minute THEN
            v_tokens := greatest(0, v_tokens + p_per_minute - b.capacity);
        END IF;
        v_tokens := least(p_per_minute, v_tokens + greatest(0, now_s - b.updated) * p_per_minute / 60.0);
        IF p_cost > p_per_minute THEN
            UPDATE limit_bucket SET tokens = v_tokens, capacity = p_per_minute, updated = now_s
                WHERE key = p_key;
            RETURN QUERY SELECT 'never'::text, 0::float8;
            RETURN;
        END IF;
        IF p_cost > v_tokens THEN
            UPDATE limit_bucket SET tokens = v_tokens, capacity = p_per_minute, updated = now_s
                WHERE key = p_key;
            RETURN QUERY SELECT 'rate'::text, (p_cost - v_tokens) * 60.0 / p_per_minute;
            RETURN;
        END IF;
        UPDATE limit_bucket SET tokens = v_tokens - p_cost, capacity = p_per_minute,
            updated = now_s WHERE key = p_key;
    END IF;
    INSERT INTO limit_lease (token, key, expires) VALUES (p_token, p_key, now_s + p_ttl);
    RETURN QUERY SELECT 'ok'::text, 0::float8;
END $$
"""


def upgrade() -> None:
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "limit_bucket",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        prefixes=unlogged,
    )
    op.create_table(
        "limit_lease",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        prefixes=unlogged,
    )
    op.create_index("ix_limit_lease_key", "limit_lease", ["key"])
    if unlogged:
        op.execute(ADMIT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION trainer_admit(text, int, int, int, text, float8, text[])")
    op.drop_index("ix_limit_lease_key", table_name="limit_lease")
    op.drop_table("limit_lease")
    op.drop_table("limit_bucket")
