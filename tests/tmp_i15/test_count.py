from sqlalchemy import event as sa_event
from db.session import get_engine
from tests.support.stripe_events import Ids, process_ok, stripe_event


def test_count_statements():
    ids = Ids()
    process_ok(stripe_event("customer.subscription.updated", ids))
    second = ids.next_invoice()
    seen = []
    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.split("\n")[0][:110])
    def on_commit(conn):
        seen.append("COMMIT")
    sa_event.listen(get_engine(), "before_cursor_execute", before)
    sa_event.listen(get_engine(), "commit", on_commit)
    for t in ("invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"):
        seen.append(f"=== {t}")
        ev = stripe_event(t, second)
        if t.startswith("invoice"):
            ev["data"]["object"]["billing_reason"] = "subscription_cycle"
        process_ok(ev)
    sa_event.remove(get_engine(), "before_cursor_execute", before)
    print("\n".join(seen))
