"""Fixtures of the reconciliation tests: a database and a localstripe store of each test's
own, a client for it, and a way to store a local copy as if the webhooks had delivered it.

A run compares everything Stripe lists with everything stored, so a test shares neither
with another: each gets a fresh database (a copy of a migrated template, which takes a
fraction of a second) and an emptied localstripe with the catalogue's plans. Its counts are
then its own, whatever ran before.

Drift is made the way it happens: by changing the subscription in the fake while no webhook
is registered, so the platform never hears of it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import stripe
from sqlalchemy import func, select

from billing.accounts import adopt_customer
from billing.subscriptions import apply_stripe_subscription
from core.settings import get_settings, load_settings
from core.stripe_rate_limit import RateLimitedRequestsClient
from db.migrate import upgrade
from db.models import ReconciliationRun
from db.reconciliation_report import Report
from db.session import engine_for, new_session, transaction
from db.subscriptions import Cause
from tasks.reconciliation.run import load_report, reconcile
from tests.conftest import ADMIN_URL, DATABASE_NAME, SERVER_URL
from tests.support.localstripe import TEST_KEY, LocalStripe
from tests.support.stripe_events import PRICES, billing_context, using_stripe

# Fast enough that the tests spend no time waiting, yet through the rate-limited transport.
TEST_RATE = 500.0


TEMPLATE_NAME = f"{DATABASE_NAME}_reconciliation"
PLANS = (("starter", 1900), ("pro", 2900), ("team", 9900))


def _database_url(name: str) -> str:
    return f"{SERVER_URL.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


def _admin(statement: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def _template_database() -> Iterator[str]:
    """A migrated database that each test's own database is copied from."""
    _admin(f'CREATE DATABASE "{TEMPLATE_NAME}"')
    url = _database_url(TEMPLATE_NAME)
    upgrade(load_settings(database_url=url))
    # A missed event stored here is published on the run's shared broker prefix, where the
    # session's worker (on the main database) takes it: ids far from the main database's
    # own make that message a no-op there instead of a claim of another test's row.
    template = engine_for(url)
    with template.begin() as connection:
        connection.exec_driver_sql(
            # Row ids are the month's base plus this sequence (migration 0016).
            "ALTER SEQUENCE webhook_events_row_seq RESTART WITH 500000000000"
        )
    template.dispose()
    engine_for.cache_clear()  # no connection may stay open on a template
    yield TEMPLATE_NAME
    _admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def own_database(_template_database: str) -> Iterator[str]:
    """Point the whole process (settings, engines, sessions) at a fresh database."""
    name = f"{DATABASE_NAME}_r{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{_template_database}"')
    url = _database_url(name)
    shared = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield url
    finally:
        os.environ["DATABASE_URL"] = shared
        get_settings.cache_clear()
        engine_for(url).dispose()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _localstripe_process() -> Iterator[LocalStripe]:
    with LocalStripe() as fake:
        yield fake


@pytest.fixture
def localstripe(_localstripe_process: LocalStripe) -> LocalStripe:
    """localstripe emptied for this test, with legacy plans whose ids are the catalogue's
    configured prices."""
    _localstripe_process.flush()
    for plan, amount in PLANS:
        _localstripe_process.create_plan(PRICES[plan], amount=amount)
    return _localstripe_process


def paced_client(url: str, rate: float = TEST_RATE) -> stripe.StripeClient:
    return stripe.StripeClient(
        TEST_KEY,
        base_addresses={"api": url},
        max_network_retries=0,
        http_client=RateLimitedRequestsClient(rate=rate),
    )


@pytest.fixture
def stripe_client(localstripe: LocalStripe) -> Iterator[stripe.StripeClient]:
    """The reconciliation's client for localstripe; the events applied meanwhile call
    localstripe too."""
    with using_stripe(localstripe.client()):
        yield paced_client(localstripe.url)


def new_customer(fake: LocalStripe) -> tuple[str, str]:
    """(customer id, user id) of a new customer with an email and `metadata.user_id`."""
    user_id = f"user_{uuid.uuid4().hex[:10]}"
    customer = fake.create_customer(email=f"{user_id}@example.com", metadata={"user_id": user_id})
    return customer, user_id


def new_subscription(fake: LocalStripe, plan: str = "pro") -> dict[str, Any]:
    customer, _ = new_customer(fake)
    return fake.subscribe(customer, PRICES[plan]).to_dict()


def seed(subscription: dict[str, Any], *, price: str | None = None) -> None:
    """Store the local copy as the webhooks had delivered it an hour ago; `price` replaces
    the plan the copy records."""
    copy = dict(subscription)
    if price is not None:
        items = copy["items"]["data"]
        copy["items"] = {
            **copy["items"],
            "data": [{**items[0], "plan": {"id": price}, "price": {"id": price}}],
        }
    ctx = billing_context()
    with transaction() as session:
        account = adopt_customer(session, ctx, customer_id=copy["customer"], source=copy)
        apply_stripe_subscription(
            session,
            ctx,
            account=account,
            subscription=copy,
            as_of=datetime.now(UTC) - timedelta(hours=1),
            cause=Cause.EVENT,
        )


def run_now(client: stripe.StripeClient) -> Report:
    """A real run, done here; its report."""
    run_id, status = reconcile(client=client, trigger="cli")
    assert status is not None, f"run {run_id} was already going"
    report = load_report(run_id=run_id)
    assert report is not None
    return report


def items_of(report: Report, object_id: str) -> dict[str, Any]:
    """The report's items about one object, by field."""
    return {item.field: item for item in report.items if item.object_id == object_id}


def run_count() -> int:
    with new_session() as session:
        return session.scalar(select(func.count()).select_from(ReconciliationRun)) or 0
