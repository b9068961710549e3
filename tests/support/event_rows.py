"""`webhook_events` rows generated inside PostgreSQL, by the million: for the partition
migration's test and benchmark and the growth benchmark (benchmarks/), never posted.

Each row is shaped like a stored `invoice.paid` (about 700 bytes of JSON: ids, amounts, a
line, the customer); one row in `pending_every` is left `received` (the sweep's work), one in
97 `failed`, the rest `processed`. The types rotate over five so a type filter selects a fifth.
"""

from __future__ import annotations

from datetime import date

import psycopg

TYPES = (
    "invoice.paid",
    "customer.subscription.updated",
    "charge.succeeded",
    "invoice.payment_failed",
    "customer.updated",
)

_INSERT = """
INSERT INTO webhook_events
    ({id_column} stripe_event_id, type, livemode, stripe_created, payload, status, attempts,
     last_error, received_at, processed_at)
SELECT {id_value}
       'evt_' || %(tag)s || '_' || g,
       (%(types)s::text[])[1 + g %% 5],
       false,
       at - interval '2 seconds',
       jsonb_build_object(
           'id', 'evt_' || %(tag)s || '_' || g, 'object', 'event',
           'type', (%(types)s::text[])[1 + g %% 5], 'api_version', '2024-06-20',
           'created', extract(epoch FROM at)::bigint, 'livemode', false,
           'data', jsonb_build_object('object', jsonb_build_object(
               'id', 'in_' || md5(g::text), 'object', 'invoice',
               'customer', 'cus_' || (g %% 50000), 'amount_paid', 1000 + g %% 9000,
               'currency', 'usd', 'status', 'paid', 'billing_reason', 'subscription_cycle',
               'subscription', 'sub_' || (g %% 50000),
               'lines', jsonb_build_object('object', 'list', 'data', jsonb_build_array(
                   jsonb_build_object('id', 'il_' || md5(g::text || 'l'), 'amount', 1000,
                                      'price', jsonb_build_object('id', 'price_pro_monthly'),
                                      'period', jsonb_build_object('start', 1, 'end', 2))))))),
       CASE WHEN g %% %(pending_every)s = 0 THEN 'received'
            WHEN g %% 97 = 0 THEN 'failed' ELSE 'processed' END,
       CASE WHEN g %% %(pending_every)s = 0 THEN 0 ELSE 1 END,
       CASE WHEN g %% 97 = 0 AND g %% %(pending_every)s <> 0 THEN 'a permanent error' END,
       at,
       CASE WHEN g %% %(pending_every)s = 0 THEN NULL ELSE at + interval '1 second' END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g,
     LATERAL (SELECT %(start)s::timestamptz
                     + (g - %(first)s) * %(spacing)s::interval AS at) AS times
"""


def insert_events(
    conn: psycopg.Connection,
    *,
    tag: str,
    first: int,
    count: int,
    start: str = "now() - interval '30 days'",
    spacing: str = "1 millisecond",
    month: date | None = None,
    pending_every: int = 1000,
) -> None:
    """Insert rows first..first+count-1 of a run `tag`, received from `start` on, `spacing`
    apart. With `month` (partitioned schema only), the rows get ids of that month, so they
    land in its partition; otherwise the table's own id default is used."""
    if month is None:
        id_column = id_value = ""
    else:
        id_column = "id,"
        id_value = f"webhook_events_month_first_id('{month.isoformat()}'::date) + g,"
    with conn.cursor() as cursor:
        start_value = cursor.execute(f"SELECT {start}").fetchone()[0]
        cursor.execute(
            _INSERT.format(id_column=id_column, id_value=id_value),  # type: ignore[arg-type]
            {
                "tag": tag,
                "types": list(TYPES),
                "first": first,
                "last": first + count - 1,
                "start": start_value,
                "spacing": spacing,
                "pending_every": pending_every,
            },
        )
