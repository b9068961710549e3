"""`customer.created`, `customer.updated`: keep the email current and link the user."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tasks.events.event import StripeEvent
from tasks.events.handlers.common import adopt_customer, event_time


def customer_changed(session: Session, event: StripeEvent) -> None:
    customer = event.object
    adopt_customer(session, customer_id=customer["id"], source=customer, as_of=event_time(event))
