"""The registry of handled types and the Celery tasks agree, both ways."""

from __future__ import annotations

from tasks.celery_app import app
from tasks.events.registry import HANDLERS, task_name


def registered_stripe_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if name.startswith("stripe.")}


def test_every_handled_type_has_its_task():
    assert {task_name(t) for t in HANDLERS} <= registered_stripe_tasks()


def test_every_stripe_task_is_a_handled_type():
    assert registered_stripe_tasks() <= {task_name(t) for t in HANDLERS}


def test_the_dispute_lifecycle_and_the_audit_types_are_handled():
    expected = {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
    assert expected <= set(HANDLERS)


def test_task_routes_put_event_tasks_on_the_webhooks_queue():
    route = app.amqp.router.route({}, "stripe.invoice.paid")
    assert route["queue"].name == "webhooks"
