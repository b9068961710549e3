"""webhook_events partitioned by month; dedup by Stripe event id through webhook_event_ids

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

The design is docs/decisions/0005-webhook-events-partitions.md. In short:

* The row id carries its month: `webhook_events_next_id()` is the UTC month of `now()` times
  2^40 plus a sequence number. The table is partitioned by RANGE (id), one partition a month,
  so every lookup by row id (each task's, the sweep's updates) touches one partition, and
  `ORDER BY id` (the admin list, the sweep) reads the partitions newest or oldest first and
  stops at its LIMIT. The id stays the primary key on its own.
* PostgreSQL cannot enforce a unique index that leaves out the partition key, so the Stripe
  event id moves to a narrow table, `webhook_event_ids (stripe_event_id PRIMARY KEY,
  row_id)`. A BEFORE INSERT trigger on webhook_events claims the id there first (INSERT ...
  ON CONFLICT DO NOTHING) and drops the row when it was taken: every writer (the endpoint,
  the reconciliation's catch-up, a restore) gets the dedup without knowing of it, and
  concurrent deliveries of one id wait on the unique index exactly as before.
* A DEFAULT partition catches rows of a month whose partition is missing (maintenance did not
  run), so an insert never fails for want of a partition; `webhook_events_ensure_partition`
  moves such rows into their month's partition when it creates it.

The existing table is not rewritten: it becomes the partition `webhook_events_legacy`
(attached for the ids below 2^40, which its old identity values are), keeping its rows,
indexes and ids, so that queued tasks still find their rows. The
migration costs one scan to check the partition bound and one copy of the (id, Stripe id)
pairs into webhook_event_ids: a few seconds a million rows (measured in
benchmarks/partition_migration.py), under an exclusive lock on the table.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STATUSES = "'received', 'queued', 'processing', 'processed', 'failed', 'ignored'"
PENDING = "status IN ('received', 'queued', 'processing')"
MONTHS_AHEAD = 3
LEGACY_ID_BOUND = 1 << 40

LZ4_AVAILABLE = """
SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'
"""

# The legacy table's own index names, freed for the partitioned table's indexes (an index of
# the partitioned table adopts the legacy table's equivalent index when it is attached).
LEGACY_INDEXES = (
    "webhook_events_pkey",
    "ix_webhook_events_status_id",
    "ix_webhook_events_type_id",
    "ix_webhook_events_pending",
    "ix_webhook_events_pending_received_at",
    "ix_webhook_events_failed_type",
)

FUNCTIONS = """
CREATE SEQUENCE webhook_events_row_seq AS bigint;

-- The first row id of a month: its number since year 0 times 2^40 (a trillion ids a month).
CREATE FUNCTION webhook_events_month_first_id(month date) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((extract(year FROM month)::bigint * 12 + extract(month FROM month)::bigint - 1) << 40);

CREATE FUNCTION webhook_events_next_id() RETURNS bigint
LANGUAGE sql VOLATILE
RETURN webhook_events_month_first_id((now() AT TIME ZONE 'UTC')::date)
       + (nextval('webhook_events_row_seq') & ((1::bigint << 40) - 1));

-- The month's partition, created if missing (with any rows the DEFAULT partition took for
-- it moved in); true when it was created.
CREATE FUNCTION webhook_events_ensure_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    low bigint := webhook_events_month_first_id(first_day);
    high bigint := webhook_events_month_first_id((first_day + interval '1 month')::date);
    name text := 'webhook_events_' || to_char(first_day, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhook_events_default WHERE id >= low AND id < high) THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF webhook_events FOR VALUES FROM (%s) TO (%s)',
                       name, low, high);
        RETURN true;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE webhook_events INCLUDING ALL)', name);
    EXECUTE format('WITH moved AS (DELETE FROM webhook_events_default WHERE id >= %s AND id < %s'
                   ' RETURNING *) INSERT INTO %I SELECT * FROM moved', low, high, name);
    EXECUTE format('ALTER TABLE webhook_events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   name, low, high);
    RETURN true;
END
$$;

-- The dedup: the Stripe event id is claimed in webhook_event_ids before the row is stored;
-- a row whose id was claimed before is dropped (the insert reports no row, as ON CONFLICT
-- DO NOTHING did).
CREATE FUNCTION webhook_events_claim_stripe_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_ids (stripe_event_id, row_id)
    VALUES (NEW.stripe_event_id, NEW.id)
    ON CONFLICT (stripe_event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
"""

PARTITIONED_TABLE = f"""
CREATE TABLE webhook_events (
    id bigint NOT NULL DEFAULT webhook_events_next_id(),
    stripe_event_id text NOT NULL,
    type text NOT NULL,
    api_version text,
    livemode boolean NOT NULL,
    account text,
    stripe_created timestamptz,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'received',
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    received_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    claimed_at timestamptz,
    processed_at timestamptz,
    CONSTRAINT ck_webhook_events_status CHECK (status IN ({STATUSES})),
    CONSTRAINT webhook_events_pkey PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX ix_webhook_events_status_id ON webhook_events (status, id);
CREATE INDEX ix_webhook_events_type_id ON webhook_events (type, id);
CREATE INDEX ix_webhook_events_pending ON webhook_events (id) WHERE {PENDING};
CREATE INDEX ix_webhook_events_pending_received_at ON webhook_events (received_at)
    WHERE {PENDING};
CREATE INDEX ix_webhook_events_failed_type ON webhook_events (type) WHERE status = 'failed';
CREATE TABLE webhook_events_default PARTITION OF webhook_events DEFAULT;
"""

IDS_TABLE = """
CREATE TABLE webhook_event_ids (
    stripe_event_id text PRIMARY KEY,
    row_id bigint NOT NULL
);
-- Row ids grow with insertion order: a BRIN index finds a month's ids (to forget them when the
-- month is archived) at a few pages' cost.
CREATE INDEX ix_webhook_event_ids_row_id ON webhook_event_ids USING brin (row_id);
CREATE TRIGGER webhook_events_dedup BEFORE INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION webhook_events_claim_stripe_id();
"""


def upgrade() -> None:
    bind = op.get_bind()
    # Writers wait (the endpoint answers 503 and Stripe retries); nothing is half-moved.
    op.execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE webhook_events RENAME TO webhook_events_legacy")
    op.execute("ALTER TABLE webhook_events_legacy ALTER COLUMN id DROP IDENTITY IF EXISTS")
    # Its role passes to webhook_event_ids; the index would only cost space now.
    op.execute(
        "ALTER TABLE webhook_events_legacy DROP CONSTRAINT webhook_events_stripe_event_id_key"
    )
    for index in LEGACY_INDEXES:
        op.execute(f"ALTER INDEX IF EXISTS {index} RENAME TO {index}_legacy")
    op.execute(FUNCTIONS)
    op.execute(PARTITIONED_TABLE)
    if bind.exec_driver_sql(LZ4_AVAILABLE).scalar():
        op.execute("ALTER TABLE webhook_events ALTER COLUMN payload SET COMPRESSION lz4")
    # Rows with month ids (kept by an earlier downgrade of this migration) go back to the
    # months they name, through the DEFAULT partition.
    op.execute(
        f"INSERT INTO webhook_events_default SELECT * FROM webhook_events_legacy"
        f" WHERE id >= {LEGACY_ID_BOUND}"
    )
    op.execute(f"DELETE FROM webhook_events_legacy WHERE id >= {LEGACY_ID_BOUND}")
    # The old identity values are all below 2^40, where no month's ids start (the first id
    # of January of year 1 is 12 x 2^40).
    op.execute(
        "ALTER TABLE webhook_events ATTACH PARTITION webhook_events_legacy"
        f" FOR VALUES FROM (MINVALUE) TO ({LEGACY_ID_BOUND})"
    )
    op.execute(IDS_TABLE)
    op.execute(
        "INSERT INTO webhook_event_ids (stripe_event_id, row_id)"
        " SELECT stripe_event_id, id FROM webhook_events"
    )
    op.execute(
        "SELECT webhook_events_ensure_partition("
        "((now() AT TIME ZONE 'UTC')::date + make_interval(months => m))::date)"
        f" FROM generate_series(0, {MONTHS_AHEAD}) AS m"
    )
    op.execute(
        "SELECT webhook_events_ensure_partition(make_date((m / 12)::int, (m % 12 + 1)::int, 1))"
        " FROM (SELECT DISTINCT id >> 40 AS m FROM webhook_events_default) AS months"
    )
    # New ids of this month must not meet the ones those rows kept.
    op.execute(
        "SELECT setval('webhook_events_row_seq', max(id & 1099511627775))"
        f" FROM webhook_events WHERE id >= {LEGACY_ID_BOUND} HAVING count(*) > 0"
    )


def downgrade() -> None:
    op.execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE webhook_events RENAME TO webhook_events_partitioned")
    op.execute("ALTER INDEX webhook_events_pkey RENAME TO webhook_events_partitioned_pkey")
    for index in LEGACY_INDEXES[1:]:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_partitioned")
    op.execute(
        "CREATE TABLE webhook_events (LIKE webhook_events_partitioned"
        " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMPRESSION)"
    )
    op.execute("INSERT INTO webhook_events SELECT * FROM webhook_events_partitioned")
    op.execute("DROP TABLE webhook_events_partitioned")
    op.execute("DROP TABLE webhook_event_ids")
    op.execute("ALTER TABLE webhook_events ALTER COLUMN id DROP DEFAULT")
    op.execute(
        "ALTER TABLE webhook_events ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"
        " (START WITH 1)"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('webhook_events', 'id'),"
        " (SELECT coalesce(max(id), 0) + 1 FROM webhook_events), false)"
    )
    op.execute("ALTER TABLE webhook_events ADD PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_stripe_event_id_key"
        " UNIQUE (stripe_event_id)"
    )
    op.execute("CREATE INDEX ix_webhook_events_status_id ON webhook_events (status, id)")
    op.execute("CREATE INDEX ix_webhook_events_type_id ON webhook_events (type, id)")
    op.execute(f"CREATE INDEX ix_webhook_events_pending ON webhook_events (id) WHERE {PENDING}")
    op.execute(
        "CREATE INDEX ix_webhook_events_pending_received_at ON webhook_events (received_at)"
        f" WHERE {PENDING}"
    )
    op.execute(
        "CREATE INDEX ix_webhook_events_failed_type ON webhook_events (type)"
        " WHERE status = 'failed'"
    )
    for name in (
        "webhook_events_ensure_partition(date)",
        "webhook_events_claim_stripe_id()",
        "webhook_events_next_id()",
        "webhook_events_month_first_id(date)",
    ):
        op.execute(f"DROP FUNCTION {name}")
    op.execute("DROP SEQUENCE webhook_events_row_seq")
