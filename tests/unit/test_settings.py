"""Settings refuse unsafe combinations with one sentence that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.settings import ConfigurationError, load_settings


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"app_env": "production", "stripe_test_mode": True}, "STRIPE_TEST_MODE"),
        ({"stripe_secret_key_live": "sk_test_abc"}, "STRIPE_SECRET_KEY_LIVE"),
        ({"stripe_secret_key_test": "sk_live_abc"}, "STRIPE_SECRET_KEY_TEST"),
        (
            {"app_env": "production", "stripe_test_mode": False, "stripe_webhook_secret": ""},
            "STRIPE_WEBHOOK_SECRET",
        ),
        ({"reconcile_at": "25:00"}, "RECONCILE_AT"),
        ({"database_url": "mysql://x"}, "DATABASE_URL"),
        ({"sweep_stale_after_seconds": 0}, "SWEEP_STALE_AFTER_SECONDS"),
        ({"app_env": "staging"}, "APP_ENV"),
        (
            {
                "app_env": "production",
                "stripe_test_mode": False,
                "stripe_secret_key_live": "sk_live_abc",
                "stripe_webhook_secret": "whsec_a",
                "auth_jwt_secret": "short",
            },
            "AUTH_JWT_SECRET",
        ),
        ({"app_billing_url": "/billing"}, "APP_BILLING_URL"),
        ({"checkout_idempotency_window_seconds": 0}, "CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS"),
        ({"invoice_archive_url": "ftp://files.example.com/x"}, "INVOICE_ARCHIVE_URL"),
        ({"invoice_archive_url": "s3://"}, "INVOICE_ARCHIVE_URL"),
        ({"invoice_archive_url": "file://"}, "INVOICE_ARCHIVE_URL"),
        ({"s3_endpoint_url": "minio:9000"}, "S3_ENDPOINT_URL"),
    ],
)
def test_unsafe_settings_are_refused_with_one_sentence(overrides, variable):
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**overrides)
    message = str(refused.value)
    assert variable in message
    assert "\n" not in message


def test_production_with_live_keys_is_accepted():
    settings = load_settings(
        app_env="production",
        stripe_test_mode=False,
        stripe_secret_key_live="sk_live_abc",
        stripe_webhook_secret="whsec_a",
    )
    assert settings.stripe_secret_key == "sk_live_abc"


def test_several_webhook_secrets_are_split_on_commas():
    settings = load_settings(stripe_webhook_secret=" whsec_new , whsec_old ,")
    assert settings.webhook_secrets == ("whsec_new", "whsec_old")


def test_a_plain_postgresql_url_gets_the_psycopg_driver():
    settings = load_settings(database_url="postgresql://u@h:5432/d")
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@h:5432/d"
    assert settings.libpq_url == "postgresql://u@h:5432/d"


def test_the_command_line_prints_the_refusal_without_a_traceback():
    env = {**os.environ, "APP_ENV": "production", "STRIPE_TEST_MODE": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "billing: configuration error: STRIPE_TEST_MODE must be false when APP_ENV=production."
    )


def test_a_plan_s_price_variable_follows_the_mode():
    test_mode = load_settings(stripe_test_mode=True, stripe_price_pro_test="price_pro_t")
    live_mode = load_settings(stripe_test_mode=False, stripe_price_pro_live="")
    assert test_mode.price_variable("pro") == "STRIPE_PRICE_PRO_TEST"
    assert test_mode.price_id("pro") == "price_pro_t"
    assert live_mode.price_variable("pro") == "STRIPE_PRICE_PRO_LIVE"
    assert live_mode.price_id("pro") is None


def test_a_plan_without_a_price_setting_has_no_price_id():
    settings = load_settings()
    assert settings.price_variable("free") == "STRIPE_PRICE_FREE_TEST"
    assert settings.price_id("free") is None
