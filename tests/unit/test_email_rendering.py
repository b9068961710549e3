"""Every template renders, in both parts, with escaping, money and time zones right."""

from __future__ import annotations

import subprocess
import sys

import pytest
from jinja2 import UndefinedError

from core.settings import load_settings
from emails.rendering import EmailRenderer, day, money, when
from emails.samples import SAMPLES

TEMPLATES = [
    "payment_succeeded",
    "payment_failed",
    "subscription_canceled",
    "plan_changed",
    "credits_low",
    "dispute_opened",
    "dispute_closed",
    "dispute_evidence_due",
    "trial_ending",
    "renewal_upcoming",
    "payment_action_required",
    "subscription_paused",
    "subscription_resumed",
    "checkout_recovery",
    "fraud_warning",
    "dispute_ratio",
]


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(load_settings(product_name="Acme Cloud", support_email="help@acme.test"))


def test_the_shipped_templates_are_exactly_the_known_emails(renderer):
    assert renderer.template_names() == sorted(TEMPLATES)
    assert set(SAMPLES) == set(TEMPLATES)


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_renders_a_subject_an_html_part_and_a_text_part(renderer, name):
    email = renderer.render(name, SAMPLES[name])

    assert email.subject and "\n" not in email.subject
    assert email.html.lstrip().startswith("<!doctype html>")
    assert "Acme Cloud" in email.html and "Acme Cloud" in email.text
    assert "<html" not in email.text and "<table" not in email.text
    assert "{{" not in email.html + email.text


@pytest.mark.parametrize(
    "name",
    [
        "payment_succeeded",
        "payment_failed",
        "credits_low",
        "trial_ending",
        "renewal_upcoming",
        "payment_action_required",
        "subscription_paused",
        "subscription_resumed",
        "checkout_recovery",
    ],
)
def test_customer_emails_carry_the_support_address(renderer, name):
    email = renderer.render(name, SAMPLES[name])
    assert "help@acme.test" in email.html
    assert "help@acme.test" in email.text


def test_a_name_with_markup_is_escaped_in_html_and_plain_in_text(renderer):
    context = {**SAMPLES["payment_succeeded"], "customer_name": "<script>alert(1)</script>"}
    email = renderer.render("payment_succeeded", context)
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "Hi <script>alert(1)</script>," in email.text


def test_the_receipt_shows_amount_plan_credits_period_and_invoice_link(renderer):
    email = renderer.render("payment_succeeded", SAMPLES["payment_succeeded"])
    assert email.subject == "Receipt: $29.00 for Pro"
    for part in (email.html, email.text):
        assert "$29.00" in part
        assert "5,000" in part
        assert "January 1, 2026" in part and "February 1, 2026" in part
        assert SAMPLES["payment_succeeded"]["invoice_url"] in part


def test_a_missing_value_is_an_error_not_a_blank(renderer):
    context = dict(SAMPLES["payment_failed"])
    del context["invoice_url"]
    with pytest.raises(UndefinedError):
        renderer.render("payment_failed", context)


def test_a_downgrade_reads_differently_from_an_upgrade(renderer):
    downgrade = {**SAMPLES["plan_changed"], "direction": "downgrade", "credits_granted": 0}
    assert renderer.render("plan_changed", downgrade).subject == "Your plan changes to Pro"
    assert renderer.render("plan_changed", SAMPLES["plan_changed"]).subject == "You upgraded to Pro"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (2900, "usd", "$29.00"),
        (550, "eur", "€5.50"),
        (500, "jpy", "¥500"),
        (1234, "kwd", "KWD1.234"),
        (10000, "isk", "ISK100.00"),
        (123456789, "usd", "$1,234,567.89"),
    ],
)
def test_amounts_are_shown_in_their_currency(amount, currency, shown):
    assert money(amount, currency) == shown


def test_dates_use_the_customers_time_zone_and_utc_otherwise():
    midnight_utc = 1769904000  # 2026-02-01T00:00:00Z
    assert when(midnight_utc) == "Feb 1, 2026, 00:00 UTC"
    assert when(midnight_utc, "America/New_York") == "Jan 31, 2026, 19:00 EST"
    assert day(midnight_utc, "America/New_York") == "January 31, 2026"
    assert when(midnight_utc, "Not/AZone") == "Feb 1, 2026, 00:00 UTC"


def test_preview_writes_every_template_as_html_and_text(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "emails", "preview", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in TEMPLATES:
        assert (tmp_path / f"{name}.html").read_text().startswith("<!doctype html>")
        assert (tmp_path / f"{name}.txt").read_text().startswith("Subject: ")


def test_a_failed_checkout_payment_says_what_it_was_for_and_links_no_invoice(renderer):
    context = {
        **SAMPLES["payment_failed"],
        "purchase": "500 credits",
        "plan_name": None,
        "invoice_number": None,
        "invoice_url": None,
        "next_attempt": None,
    }
    email = renderer.render("payment_failed", context)
    assert "for 500 credits" in email.text and "for 500 credits" in email.html
    assert "Invoice" not in email.text
    assert "https://app.example.com/billing" in email.text
