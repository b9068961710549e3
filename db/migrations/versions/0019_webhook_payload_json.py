"""webhook_events.payload: json (the body as Stripe sent it) instead of jsonb

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

The payload is written once by the webhook endpoint and read whole by the worker; nothing
indexes or searches inside it on the hot path (the console's customer filter reads it with
`->`, which json has too). jsonb parses every 4 KB body into its binary form and sorts its
keys: 43 % of an inserting backend's CPU under webhook load, the largest single cost of
storing an event (webhook ingest: PostgreSQL 257-273 -> 142-156 µs an event). json only
checks that the text is JSON and keeps it as it came, byte for byte in key order and
spacing, which is also what an audit row should hold. (A NUL character, which jsonb
refused, the endpoint refuses itself: no field read out of the row could hold it.)

Changing the type rewrites every month's partition under an ACCESS EXCLUSIVE lock: the
endpoint answers 503 meanwhile, and Stripe delivers those events again. Measured on the
project's 2-core machine: 200,000 rows of 3-4 KB (833 MB) in 15.5 s, so about 80 s a
million rows; the downgrade takes as long. The lz4 compression (migration 0004) is kept.
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


LZ4_AVAILABLE = """
SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'
"""


SET_LZ4_EVERYWHERE = """
DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT relid FROM pg_partition_tree('webhook_events') LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN payload SET COMPRESSION lz4', part);
    END LOOP;
END $$
"""


def _change_type(new_type: str) -> None:
    # A type change forgets the column's compression (migration 0004's lz4): the rewrite
    # would compress every row with pglz, and so would every insert after it.
    lz4 = op.get_bind().exec_driver_sql(LZ4_AVAILABLE).scalar()
    if lz4:
        op.execute("SET LOCAL default_toast_compression = lz4")
    op.execute(
        f"ALTER TABLE webhook_events ALTER COLUMN payload TYPE {new_type} USING payload::{new_type}"
    )
    if lz4:  # on the table and each month: setting it on the parent does not reach them
        op.execute(SET_LZ4_EVERYWHERE)


def upgrade() -> None:
    _change_type("json")


def downgrade() -> None:
    _change_type("jsonb")
