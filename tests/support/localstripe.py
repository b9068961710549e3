"""A real Stripe fake over HTTP for tests: `localstripe` (PyPI) as a subprocess.

localstripe speaks an old Stripe dialect: legacy `plan` objects (no prices, no Checkout, no
billing portal, no `/v1/account`), events with `api_version` 2017-08-15, no
`customer.subscription.updated`, and subscriptions whose period never advances. A renewal is a
manual invoice (`renew`). The helpers' docstrings say which flows work and what they send.

It keeps all state in memory. Upstream it also pickles the whole store to the shared file
`/tmp/localstripe.pickle` after every write; the bootstrap below turns that off, so parallel
runs never share or rewrite that file. Tests own their data through unique ids.
"""

from __future__ import annotations

import sys
import time
import uuid
from types import TracebackType

import httpx
import stripe
from stripe.params import CustomerCreateParams

from tests.support.processes import ManagedProcess, free_port

TEST_KEY = "sk_test_localstripe"

# Payment methods localstripe turns into fresh, attachable cards on every retrieval.
CARD_OK = "pm_card_visa"
# Attaches, then declines every charge synchronously: invoice stays `open`, no event is sent.
CARD_CHARGE_DECLINED = "pm_card_chargeCustomerFail"
# A card that needs 3-D Secure: its payment waits (`requires_action`) until `authenticate`.
CARD_3DS_NUMBER = "4000002500003155"

_BOOTSTRAP = (
    "import localstripe.resources as r\n"
    "r.Store.dump_to_disk = lambda self: None\n"
    "from localstripe.server import start\n"
    "start()\n"
)


class LocalStripe(ManagedProcess):
    """localstripe on a free port, in its own process group, its output in a log file."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [sys.executable, "-c", _BOOTSTRAP, "--port", str(self.port), "--from-scratch"],
            {"PYTHONUNBUFFERED": "1"},
        )

    def start(self, timeout: float = 30.0) -> None:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"localstripe exited:\n{self.log()[-3000:]}")
            try:
                answer = httpx.get(
                    f"{self.url}/v1/customers", params={"limit": 1}, auth=(TEST_KEY, ""), timeout=1
                )
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"localstripe did not start:\n{self.log()[-3000:]}")

    def __enter__(self) -> LocalStripe:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- configuration routes -------------------------------------------------------------

    def register_webhook(
        self, url: str, secret: str, events: list[str] | None = None, name: str | None = None
    ) -> None:
        """Send every event (or only `events`) to `url`, signed with `secret`.

        Registrations are per process and replace one of the same `name`. Each event is sent
        once, about 1 s after it happens, with no retry; deliveries run concurrently, so their
        order is not guaranteed.
        """
        body: dict[str, object] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        answer = httpx.post(f"{self.url}/_config/webhooks/{name or uuid.uuid4().hex}", json=body)
        answer.raise_for_status()

    def flush(self) -> None:
        """Forget every object (webhook registrations stay). Prefer unique ids per test."""
        httpx.delete(f"{self.url}/_config/data").raise_for_status()

    # --- the Stripe client -----------------------------------------------------------------

    def client(self) -> stripe.StripeClient:
        """A client pointed at the fake. Use `client.v1.<resource>` (the bare form warns)."""
        return stripe.StripeClient(
            TEST_KEY, base_addresses={"api": self.url}, max_network_retries=0
        )

    # --- helpers for a subscribe / renew / cancel flow -------------------------------------

    def create_plan(
        self,
        plan_id: str | None = None,
        amount: int = 2000,
        currency: str = "usd",
        interval: str = "month",
        product_name: str = "Test product",
    ) -> str:
        """A legacy plan (localstripe has no prices) with its own product; returns its id."""
        v1 = self.client().v1
        product = v1.products.create(params={"name": product_name})
        plan = v1.plans.create(
            params={
                "id": plan_id or f"plan_{uuid.uuid4().hex[:12]}",
                "amount": amount,
                "currency": currency,
                "interval": interval,
                "product": product.id,
            }
        )
        return plan.id

    def create_customer(
        self,
        email: str | None = None,
        payment_method: str | None = CARD_OK,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """A customer whose default payment method is `payment_method`; returns its id.

        Customer ids are always generated (`id=` is refused), so map them in the test.
        """
        params: CustomerCreateParams = {"metadata": metadata or {}}
        if email is not None:
            params["email"] = email
        if payment_method is not None:
            params["payment_method"] = payment_method
            params["invoice_settings"] = {"default_payment_method": payment_method}
        return self.client().v1.customers.create(params=params).id

    def subscribe(self, customer_id: str, plan_id: str) -> stripe.Subscription:
        """Subscribe and pay the first invoice at once (`active`, or `incomplete` if declined).

        Events: invoice.created, payment_intent.succeeded, invoice.payment_succeeded,
        customer.subscription.created (billing_reason is always null).
        """
        return self.client().v1.subscriptions.create(
            params={"customer": customer_id, "items": [{"plan": plan_id}]}
        )

    def renew(self, subscription_id: str) -> stripe.Invoice:
        """A new invoice for the subscription, paid with the customer's default method.

        localstripe never renews by itself: this is the only way. The invoice carries the
        subscription's (unchanging) current period and `billing_reason` null; a declined card
        leaves it `open` and sends no event (see `renew_with_failed_payment`).
        """
        v1 = self.client().v1
        subscription = v1.subscriptions.retrieve(subscription_id)
        invoice = v1.invoices.create(
            params={"customer": subscription.customer, "subscription": subscription_id}
        )
        return v1.invoices.pay(invoice.id)

    def renew_with_failed_payment(self, subscription_id: str) -> stripe.Invoice:
        """A renewal whose payment fails: sends `invoice.payment_failed`, sub goes `past_due`.

        Makes a 3-D Secure card the customer's default, renews, then fails the authentication,
        the one card path on which localstripe reports a failed invoice payment. The customer
        keeps that card as default; set another one for later renewals.
        """
        v1 = self.client().v1
        subscription = v1.subscriptions.retrieve(subscription_id)
        customer_id = str(subscription.customer)
        card = v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": CARD_3DS_NUMBER,
                    "exp_month": 12,
                    "exp_year": 2030,
                    "cvc": "123",
                },
            }
        )
        v1.payment_methods.attach(card.id, params={"customer": customer_id})
        v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
        )
        invoice = self.renew(subscription_id)
        self.authenticate(str(invoice.payment_intent), success=False)
        return v1.invoices.retrieve(invoice.id)

    def authenticate(self, payment_intent_id: str, success: bool) -> None:
        """Answer a 3-D Secure challenge (localstripe's own `_authenticate` route)."""
        intent = self.client().v1.payment_intents.retrieve(payment_intent_id)
        answer = httpx.post(
            f"{self.url}/v1/payment_intents/{payment_intent_id}/_authenticate",
            data={"client_secret": intent.client_secret, "success": str(success).lower()},
            auth=(TEST_KEY, ""),
        )
        answer.raise_for_status()

    def cancel(self, subscription_id: str) -> stripe.Subscription:
        """Cancel now: status `canceled`, event customer.subscription.deleted."""
        return self.client().v1.subscriptions.cancel(subscription_id)
