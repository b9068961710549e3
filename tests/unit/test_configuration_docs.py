"""docs/configuration.md is generated from `Settings`, and the committed page is the current one."""

from __future__ import annotations

import pytest

from core import configuration_docs
from core.configuration_docs import PAGE, SECTIONS, render, section_of
from core.settings import Settings

FIELDS = Settings.model_fields
# The variables of the documented outside interface's environment table. Those that are
# fields must be on the page; the others (BROKER_URL, STRIPE_API_VERSION, ...) are not settings yet.
CONTRACT_VARIABLES = (
    "APP_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "STRIPE_ENABLED",
    "STRIPE_TEST_MODE",
    "STRIPE_SECRET_KEY_LIVE",
    "STRIPE_SECRET_KEY_TEST",
    "STRIPE_PUBLISHABLE_KEY_LIVE",
    "STRIPE_PUBLISHABLE_KEY_TEST",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_STARTER_LIVE",
    "STRIPE_PRICE_STARTER_TEST",
    "STRIPE_PRICE_PRO_LIVE",
    "STRIPE_PRICE_PRO_TEST",
    "STRIPE_PRICE_TEAM_LIVE",
    "STRIPE_PRICE_TEAM_TEST",
    "STRIPE_API_BASE",
    "SMTP_URL",
    "EMAIL_FROM",
    "ADMIN_EMAILS",
    "SENTRY_DSN",
    "ADMIN_API_TOKEN",
    "AUTH_JWT_SECRET",
    "FLOWER_BASIC_AUTH",
    "PLANS_FILE",
    "RECONCILE_AT",
    "SWEEP_INTERVAL_SECONDS",
    "SWEEP_STALE_AFTER_SECONDS",
    "BROKER_URL",
    "HEALTH_CACHE_SECONDS",
    "AUTH_JWT_ISSUER",
    "AUTH_JWT_AUDIENCE",
    "STRIPE_API_VERSION",
    "INVOICE_ARCHIVE_URL",
    "INVOICE_PDF_ALLOWED_HOSTS",
    "S3_ENDPOINT_URL",
    "RENEWAL_NOTICE_MONTHLY",
    "CHECKOUT_RECOVERY_EMAILS",
    "EFW_ACTION",
    "EFW_AUTO_REFUND_MAX_AMOUNT",
    "TRUSTED_PROXY_HOPS",
    "REFUND_POLICY_URL",
    "TERMS_URL",
    "WEBHOOK_EVENTS_RETENTION_MONTHS",
)
SECRET_WORDS = ("secret", "token", "password", "basic_auth", "dsn")


def documented_row(variable: str) -> str:
    """The page's table row of one variable."""
    rows = [line for line in render().splitlines() if line.startswith(f"| `{variable}` |")]
    assert len(rows) == 1, f"{variable} has {len(rows)} rows on the page, not one"
    return rows[0]


def test_the_committed_page_is_current():
    assert PAGE.read_text() == render(), (
        "docs/configuration.md is out of date with core/settings.py: run `make docs`"
    )


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_has_a_description_and_a_section(name):
    field = FIELDS[name]
    assert field.description and field.description.strip(), (
        f"Settings.{name} needs Field(description=...): docs/configuration.md is built from it"
    )
    assert section_of(field) in SECTIONS, (
        f"Settings.{name} needs json_schema_extra={{'section': ...}}, one of {list(SECTIONS)}"
    )


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_has_its_row(name):
    row = documented_row(name.upper())
    assert FIELDS[name].description in row


@pytest.mark.parametrize("variable", [v for v in CONTRACT_VARIABLES if v.lower() in FIELDS])
def test_the_contract_variables_that_are_settings_are_documented(variable):
    documented_row(variable)


@pytest.mark.parametrize("name", [n for n in FIELDS if any(w in n for w in SECRET_WORDS)])
def test_secrets_have_no_default(name):
    assert FIELDS[name].default == "", f"{name.upper()} is a secret: it must have no default"
    assert documented_row(name.upper()).startswith(f"| `{name.upper()}` | (empty) |")


def test_every_listed_refusal_is_one_the_validators_make():
    examples = configuration_docs.PRODUCTION_REFUSALS + configuration_docs.ALWAYS_REFUSED
    sentences = [configuration_docs.refusal(example) for example in examples]
    assert len(set(sentences)) == len(sentences), "two examples show the same refusal"
    for example, sentence in zip(examples, sentences, strict=True):
        assert any(name.upper() in sentence for name in example), (example, sentence)


def test_an_accepted_example_is_not_listed_as_a_refusal():
    accepted = {"app_env": "production", "stripe_test_mode": False, "stripe_enabled": False}
    with pytest.raises(AssertionError, match="listed as a refusal"):
        configuration_docs.refusal({**accepted, "stripe_webhook_secret": "whsec_example"})


def test_the_page_does_not_read_the_environment(monkeypatch):
    page = render()
    monkeypatch.setenv("PRODUCT_NAME", "Not The Default")
    monkeypatch.setenv("APP_ENV", "production")
    assert render() == page


def test_write_puts_the_page_in_docs(tmp_path, monkeypatch, capsys):
    target = tmp_path / "configuration.md"
    monkeypatch.setattr(configuration_docs, "PAGE", target)
    assert configuration_docs.main(["--write"]) == 0
    assert target.read_text() == render()
    assert configuration_docs.main(["--bogus"]) == 2
