"""One reconciliation run: list every Stripe subscription, compare, repair, record.

Starting, doing and reading a run; the pass over Stripe's pages is in `scan`, the repairs in
`repairs`, the record keeping in `recording`, the report's shape in `model`.

One run at a time: starting takes a transaction lock and finds any `running` row; doing a run
holds a session-level advisory lock on a connection of its own for its whole length, so a
second worker given the same run does nothing. The ids Stripe listed go to a temporary table
on that connection, so memory stays flat whatever the count; closing the connection for good
at the end drops the lock and the table with it.

A dry run compares and reports the same way but writes nothing: no run row, no item, no
repair, no mark, no event stored (its temporary table dies with its connection).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import stripe
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import reconciliation as records
from db.models import RunStatus
from db.reconciliation import RUN_STALE_AFTER
from db.reconciliation_report import Report
from db.session import get_engine, transaction
from tasks.reconciliation.scan import Pass

log = logging.getLogger(__name__)

# How long a process handed a run waits for the run lock: a finished run's connection lets go
# of it within milliseconds; a run still going holds it for minutes.
EXECUTION_LOCK_WAIT_SECONDS = 10


def start_run(*, trigger: str) -> tuple[int, bool]:
    """Open a run, or find the one going; (run id, created)."""
    with transaction() as session:
        run, created = records.start_run(session, trigger=trigger, stale_after=RUN_STALE_AFTER)
        return run.id, created


def execute_run(*, run_id: int, client: stripe.StripeClient) -> RunStatus | None:
    """Do a started run to its end; None when another process is doing it, or it is over.

    A run whose process died (the lock went with its connection) is done again from the
    start by the next process handed it: its items are unique per run, so nothing doubles."""
    with _scan_session() as scan:
        if not records.hold_execution(scan, wait_seconds=EXECUTION_LOCK_WAIT_SECONDS):
            log.info("reconciliation run %s: another process is doing it", run_id)
            return None
        scan.commit()
        try:
            return _execute_held(scan, run_id=run_id, client=client)
        finally:
            scan.rollback()
            records.release_execution(scan)
            scan.commit()


def _execute_held(scan: Session, *, run_id: int, client: stripe.StripeClient) -> RunStatus | None:
    run = records.find_run(scan, run_id=run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return None
    records.create_listed_table(scan)
    reconciliation = Pass(scan=scan, client=client, run_id=run_id, listed_before=run.started_at)
    scan.commit()
    try:
        reconciliation.run()
    except BaseException as exc:
        # Ctrl-C, a time limit, a lost database: the run says where it stopped.
        scan.rollback()
        reconciliation.fail(exc)
        if not isinstance(exc, Exception):
            raise
        return RunStatus.FAILED
    reconciliation.succeed()
    return RunStatus.SUCCEEDED


def reconcile(*, client: stripe.StripeClient, trigger: str) -> tuple[int, RunStatus | None]:
    """Start a run and do it here; when one is going already, its id, and this process does
    it only if its own process died (None otherwise)."""
    run_id, _ = start_run(trigger=trigger)
    return run_id, execute_run(run_id=run_id, client=client)


def dry_run(*, client: stripe.StripeClient) -> Report:
    """Compare and report without writing anything."""
    with _scan_session() as scan:
        records.create_listed_table(scan)
        listed_before = scan.scalar(select(func.now()))
        assert listed_before is not None
        reconciliation = Pass(scan=scan, client=client, run_id=None, listed_before=listed_before)
        try:
            reconciliation.run()
        except Exception as exc:
            reconciliation.fail(exc)
        else:
            reconciliation.succeed()
        return reconciliation.report


def load_report(*, run_id: int) -> Report | None:
    with transaction() as session:
        run = records.find_run(session, run_id=run_id)
        if run is None:
            return None
        return Report.of_run(run, records.run_items(session, run_id=run_id))


@contextmanager
def _scan_session() -> Iterator[Session]:
    """A session on a connection of the run's own, closed for good afterwards: the run lock
    and the temporary table end with it instead of going back to the pool."""
    connection = get_engine().connect()
    try:
        with Session(bind=connection) as session:
            yield session
    finally:
        connection.invalidate()
        connection.close()
