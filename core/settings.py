"""Every environment variable of the platform, in one pydantic-settings class.

The validators keep the audit's production guards: a refusal is one sentence that names the
variable, raised as `ConfigurationError` so that commands print it instead of a traceback.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PAID_PLANS = ("starter", "pro", "team")
# HS256 signs with a 256-bit HMAC; a shorter secret is guessable offline from any token.
MIN_JWT_SECRET_LENGTH = 32
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ConfigurationError(Exception):
    """The configuration cannot be used; the message is one sentence naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    app_env: Literal["development", "test", "production"] = "development"

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/billing"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Lets several deployments (or test runs) share one Redis without seeing each other's queues.
    broker_key_prefix: str = ""

    stripe_enabled: bool = True
    stripe_test_mode: bool = True
    stripe_secret_key_live: str = ""
    stripe_secret_key_test: str = ""
    stripe_publishable_key_live: str = ""
    stripe_publishable_key_test: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    stripe_price_starter_live: str = ""
    stripe_price_starter_test: str = ""
    stripe_price_pro_live: str = ""
    stripe_price_pro_test: str = ""
    stripe_price_team_live: str = ""
    stripe_price_team_test: str = ""

    webhook_max_bytes: int = Field(default=1024 * 1024, gt=0)
    webhook_tolerance_seconds: int = Field(default=300, gt=0)

    smtp_url: str = ""
    email_from: str = "billing@localhost"
    admin_emails: str = ""
    product_name: str = "Example SaaS"
    support_email: str = ""
    email_max_retries: int = Field(default=6, ge=0)

    sentry_dsn: str = ""
    # `json` (one object per line, for log shippers) or `text` (for a terminal; `billing up`).
    log_format: Literal["json", "text"] = "json"
    # When set, each worker serves Prometheus metrics on this port (0: off).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    release: str = ""
    admin_api_token: str = ""
    auth_jwt_secret: str = ""
    # The host application's billing page: where Checkout and the customer portal send the
    # user back, and the link in the credits-low email.
    app_billing_url: str = "http://localhost:3000/billing"
    # Two Checkout requests of one user for the same plan or pack within this window (and
    # without an Idempotency-Key header) are one request to Stripe: a double click opens
    # one session.
    checkout_idempotency_window_seconds: int = Field(default=60, gt=0)
    flower_basic_auth: str = ""
    plans_file: str = ""
    reconcile_at: str = "03:00"
    # The reconciliation's own ceiling on Stripe requests per second, below Stripe's limits
    # (25/s in test mode, 100/s live) so the nightly scan leaves room for the platform's calls.
    stripe_rate_limit_test: float = Field(default=20, gt=0)
    stripe_rate_limit_live: float = Field(default=80, gt=0)
    # What a lost chargeback does to the customer's subscription besides keeping the hold.
    dispute_lost_action: Literal["none", "cancel_subscription"] = "none"
    # When the daily evidence-deadline reminders go out, HH:MM UTC.
    dispute_reminders_at: str = "08:00"

    sweep_interval_seconds: int = Field(default=60, gt=0)
    sweep_stale_after_seconds: int = Field(default=300, gt=0)
    task_max_retries: int = Field(default=8, ge=0)

    @field_validator("reconcile_at", "dispute_reminders_at")
    @classmethod
    def _time_of_day_is_hh_mm(cls, value: str, info: ValidationInfo) -> str:
        if not _HH_MM.match(value):
            raise ValueError(f"{str(info.field_name).upper()} must be HH:MM in UTC, such as 03:00.")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_scheme(cls, value: str) -> str:
        if value and not value.startswith(("smtp://", "smtp+starttls://", "smtps://")):
            raise ValueError("SMTP_URL must start with smtp://, smtp+starttls:// or smtps://.")
        return value

    @field_validator("app_billing_url")
    @classmethod
    def _billing_url_is_absolute(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("APP_BILLING_URL must be an absolute http(s) URL.")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_is_postgres(cls, value: str) -> str:
        if not value.startswith(("postgresql+psycopg://", "postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must be a postgresql+psycopg:// URL.")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_combinations(self) -> Settings:
        if self.stripe_secret_key_live.startswith(("sk_test_", "rk_test_")):
            raise ValueError(
                "STRIPE_SECRET_KEY_LIVE holds a test key (sk_test_); put the live key there."
            )
        if self.stripe_secret_key_test.startswith(("sk_live_", "rk_live_")):
            raise ValueError(
                "STRIPE_SECRET_KEY_TEST holds a live key (sk_live_); put the test key there."
            )
        if self.app_env == "production":
            if self.stripe_test_mode:
                raise ValueError("STRIPE_TEST_MODE must be false when APP_ENV=production.")
            if not self.webhook_secrets:
                raise ValueError("STRIPE_WEBHOOK_SECRET must be set when APP_ENV=production.")
            if self.auth_jwt_secret and len(self.auth_jwt_secret) < MIN_JWT_SECRET_LENGTH:
                raise ValueError(
                    f"AUTH_JWT_SECRET must be at least {MIN_JWT_SECRET_LENGTH} characters "
                    "when APP_ENV=production."
                )
            if self.stripe_enabled and not self.stripe_secret_key_live:
                raise ValueError("STRIPE_SECRET_KEY_LIVE must be set when APP_ENV=production.")
        return self

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """Every configured signing secret; during a rotation any of them may sign a delivery."""
        return tuple(s.strip() for s in self.stripe_webhook_secret.split(",") if s.strip())

    @property
    def admin_addresses(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.admin_emails.split(",") if a.strip())

    @property
    def support_address(self) -> str:
        return self.support_email or self.email_from

    @property
    def stripe_secret_key(self) -> str:
        return self.stripe_secret_key_test if self.stripe_test_mode else self.stripe_secret_key_live

    @property
    def stripe_secret_key_variable(self) -> str:
        """The variable that holds the key of the configured mode, for messages."""
        return "STRIPE_SECRET_KEY_TEST" if self.stripe_test_mode else "STRIPE_SECRET_KEY_LIVE"

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the psycopg 3 driver, whatever spelling the operator used."""
        for prefix in ("postgresql://", "postgres://"):
            if self.database_url.startswith(prefix):
                return "postgresql+psycopg://" + self.database_url.removeprefix(prefix)
        return self.database_url

    @property
    def libpq_url(self) -> str:
        """The URL as libpq (and so raw psycopg) spells it."""
        return "postgresql://" + self.sqlalchemy_url.removeprefix("postgresql+psycopg://")


def load_settings(**overrides: object) -> Settings:
    """Read the environment; an unusable value raises `ConfigurationError` with one sentence."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(_first_sentence(exc)) from None


def _first_sentence(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["loc"]:
        variable = str(error["loc"][0]).upper()
        if variable not in message:
            message = f"{variable} is invalid: {message}."
    return message


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
