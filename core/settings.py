"""Every environment variable of the platform, in one pydantic-settings class.

The validators refuse unsafe production settings (test mode, no webhook secret, no live key,
a short JWT secret) and keys put in the wrong mode's variable: a refusal is one sentence that
names the variable, raised as `ConfigurationError` so that commands print it instead of a
traceback.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.object_store import check_store_url
from core.stripe_versions import NEWEST_PROVEN as NEWEST_PROVEN_API_VERSION

PAID_PLANS = ("starter", "pro", "team")
# Each paid plan's price id is in STRIPE_PRICE_<PLAN>_TEST or _LIVE (see `Settings.price_variable`).
PRICE_VARIABLE_PREFIX = "STRIPE_PRICE_"
# HS256 signs with a 256-bit HMAC; a shorter secret is guessable offline from any token.
MIN_JWT_SECRET_LENGTH = 32
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
BROKER_SCHEMES = ("redis://", "rediss://", "unix://", *AMQP_SCHEMES)


class ConfigurationError(Exception):
    """The configuration cannot be used; the message is one sentence naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    app_env: Literal["development", "test", "production"] = Field(
        default="development",
        description=(
            "Where the platform runs. With nothing else set, `development` lets `billing up` "
            "start: it makes and prints a webhook secret when none is given, skips Stripe calls "
            "while no key is set, runs Flower without auth on 127.0.0.1, and the user API "
            "answers 503 until `AUTH_JWT_SECRET` is set. `test` changes no wiring (no eager "
            "Celery; Sentry still reports when a DSN is set). `production` refuses the unsafe "
            "settings listed under Refusals."
        ),
        json_schema_extra={"section": "Runtime"},
    )

    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/billing",
        description=(
            "PostgreSQL, spelt `postgresql+psycopg://`, `postgresql://` or `postgres://` "
            "(the psycopg 3 driver is used whatever the spelling)."
        ),
        json_schema_extra={"section": "Database and broker"},
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description=(
            "Redis: the Celery result backend, and the broker unless BROKER_URL names another."
        ),
        json_schema_extra={"section": "Database and broker"},
    )
    broker_url: str = Field(
        default="",
        description=(
            "The Celery broker: `redis://...` or `amqp://...` (RabbitMQ, with quorum queues "
            "and publisher confirms). Empty: REDIS_URL."
        ),
        json_schema_extra={"section": "Database and broker"},
    )
    broker_key_prefix: str = Field(
        default="",
        description=(
            "A prefix for every broker key, so that several deployments (or test runs) share "
            "one Redis without seeing each other's queues (on RabbitMQ, give each its own "
            "virtual host in BROKER_URL instead)."
        ),
        json_schema_extra={"section": "Database and broker"},
    )

    stripe_enabled: bool = Field(
        default=True,
        description="`false` turns Stripe off: the routes that call Stripe answer 503.",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_test_mode: bool = Field(
        default=True,
        description=(
            "Use the `_TEST` keys and prices instead of the `_LIVE` ones. Refused in production."
        ),
        json_schema_extra={"section": "Stripe"},
    )
    stripe_secret_key_live: str = Field(
        default="",
        description=(
            "The live secret key (`sk_live_...`) or restricted key (`rk_live_...`); a test key "
            "here refuses to start. Required in production while `STRIPE_ENABLED` is true."
        ),
        json_schema_extra={"section": "Stripe"},
    )
    stripe_secret_key_test: str = Field(
        default="",
        description=(
            "The test secret key (`sk_test_...`) or restricted key (`rk_test_...`); a live key "
            "here refuses to start. While the key of the current mode is unset, the routes "
            "that call Stripe answer 503."
        ),
        json_schema_extra={"section": "Stripe"},
    )
    stripe_publishable_key_live: str = Field(
        default="",
        description="The live publishable key (`pk_live_...`).",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_publishable_key_test: str = Field(
        default="",
        description="The test publishable key (`pk_test_...`).",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_webhook_secret: str = Field(
        default="",
        description=(
            "The signing secret of the webhook endpoint (`whsec_...`), or several separated by "
            "commas during a rotation: a delivery signed with any of them is accepted. While "
            "none is set the webhook answers 500 (`billing up` makes and prints one in "
            "development). Required in production."
        ),
        json_schema_extra={"section": "Webhook endpoint"},
    )
    stripe_api_base: str = Field(
        default="",
        description=(
            "Another Stripe API address, such as a local fake in tests; empty: Stripe's own. "
            "Leave it unset in production."
        ),
        json_schema_extra={"section": "Stripe"},
    )
    stripe_api_version: str = Field(
        default=NEWEST_PROVEN_API_VERSION,
        description=(
            "The API version the Stripe client pins on every call (`Stripe-Version`), so "
            "objects fetched from Stripe have the shape the tests prove. Default: the newest "
            "version the test fixtures cover. Webhooks arrive in the endpoint's own version; "
            "one outside the proven range still processes and is counted by "
            "`billing_events_unproven_api_version`."
        ),
        json_schema_extra={"section": "Stripe"},
    )
    stripe_price_starter_live: str = Field(
        default="",
        description="The Stripe price (or legacy plan) id of the `starter` plan in live mode.",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_price_starter_test: str = Field(
        default="",
        description="The Stripe price (or legacy plan) id of the `starter` plan in test mode.",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_price_pro_live: str = Field(
        default="",
        description="The Stripe price (or legacy plan) id of the `pro` plan in live mode.",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_price_pro_test: str = Field(
        default="",
        description="The Stripe price (or legacy plan) id of the `pro` plan in test mode.",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_price_team_live: str = Field(
        default="",
        description="The Stripe price (or legacy plan) id of the `team` plan in live mode.",
        json_schema_extra={"section": "Stripe"},
    )
    stripe_price_team_test: str = Field(
        default="",
        description="The Stripe price (or legacy plan) id of the `team` plan in test mode.",
        json_schema_extra={"section": "Stripe"},
    )

    webhook_max_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="The largest webhook body accepted, in bytes; a larger one gets 413.",
        json_schema_extra={"section": "Webhook endpoint"},
    )
    webhook_tolerance_seconds: int = Field(
        default=300,
        gt=0,
        description=(
            "How old a `Stripe-Signature` timestamp may be, in seconds; an older delivery gets 401."
        ),
        json_schema_extra={"section": "Webhook endpoint"},
    )
    health_cache_seconds: int = Field(
        default=30,
        ge=0,
        description=(
            "How long `/api/stripe/health` reuses its last Stripe answer, good or bad, in "
            "seconds: an anonymous endpoint must not spend the account's rate limit or a "
            "thread per request (0: ask Stripe every time)."
        ),
        json_schema_extra={"section": "Webhook endpoint"},
    )

    smtp_url: str = Field(
        default="",
        description=(
            "The mail server: `smtp://host:port`, `smtp+starttls://user:pass@host:port` or "
            "`smtps://user:pass@host:port`. Under `billing up`, empty means the local mail "
            "sink; elsewhere, while it is empty every email fails."
        ),
        json_schema_extra={"section": "Email"},
    )
    email_from: str = Field(
        default="billing@localhost",
        description="The sender of every email.",
        json_schema_extra={"section": "Email"},
    )
    admin_emails: str = Field(
        default="",
        description=(
            "Who receives the admin alerts (disputes and their evidence deadlines), separated "
            "by commas."
        ),
        json_schema_extra={"section": "Email"},
    )
    product_name: str = Field(
        default="Example SaaS",
        description="The product's name, shown in every email.",
        json_schema_extra={"section": "Email"},
    )
    support_email: str = Field(
        default="",
        description="The address every email gives for questions; empty: `EMAIL_FROM`.",
        json_schema_extra={"section": "Email"},
    )
    email_max_retries: int = Field(
        default=6,
        ge=0,
        description="How many times a temporary SMTP failure is retried before the email fails.",
        json_schema_extra={"section": "Email"},
    )

    sentry_dsn: str = Field(
        default="",
        description="Sentry for the API, the worker and beat; empty: off.",
        json_schema_extra={"section": "Observability"},
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description=(
            "`json`: one object per line, for log shippers; `text`: for a terminal (what "
            "`billing up` uses unless it is set)."
        ),
        json_schema_extra={"section": "Observability"},
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description=(
            "When set, each worker serves its Prometheus metrics on this port (0: off). The "
            "API serves its own on `/metrics`."
        ),
        json_schema_extra={"section": "Observability"},
    )
    release: str = Field(
        default="",
        description=(
            "The release Sentry reports; empty: the installed package's version, "
            "`stripe-billing-platform@<version>`."
        ),
        json_schema_extra={"section": "Observability"},
    )
    admin_api_token: str = Field(
        default="",
        description=(
            "The bearer token of the admin API; while it is empty the admin API answers 503. "
            'Make one with `python -c "import secrets; print(secrets.token_urlsafe(32))"`.'
        ),
        json_schema_extra={"section": "Access"},
    )
    auth_jwt_secret: str = Field(
        default="",
        description=(
            "The HS256 secret of the user bearer tokens the host application mints (`sub`: "
            "the user id, and `email`); while it is empty the user API answers 503. At least "
            f"{MIN_JWT_SECRET_LENGTH} characters in production."
        ),
        json_schema_extra={"section": "Access"},
    )
    auth_jwt_issuer: str = Field(
        default="",
        description=(
            "When set, a user token's `iss` must equal it (the host application's name); "
            "`exp` is always required."
        ),
        json_schema_extra={"section": "Access"},
    )
    auth_jwt_audience: str = Field(
        default="",
        description="When set, a user token's `aud` must equal it.",
        json_schema_extra={"section": "Access"},
    )
    app_billing_url: str = Field(
        default="http://localhost:3000/billing",
        description=(
            "The host application's billing page, an absolute http(s) URL: where Checkout "
            "and the customer portal send the user back, and the link in the credits-low email."
        ),
        json_schema_extra={"section": "Host application"},
    )
    checkout_idempotency_window_seconds: int = Field(
        default=60,
        gt=0,
        description=(
            "Two Checkout requests of one user for the same plan or pack within this many "
            "seconds (and without an `Idempotency-Key` header) are one request to Stripe: a "
            "double click opens one session."
        ),
        json_schema_extra={"section": "Host application"},
    )
    flower_basic_auth: str = Field(
        default="",
        description=(
            "Flower's basic auth, `user:password[,user2:password2]` (no commas in passwords). "
            "Flower refuses to start without it, except in development on 127.0.0.1."
        ),
        json_schema_extra={"section": "Access"},
    )
    plans_file: str = Field(
        default="",
        description=(
            "The plan catalogue (TOML); empty: the one shipped in the repository, "
            "`core/plans.toml`."
        ),
        json_schema_extra={"section": "Host application"},
    )
    reconcile_at: str = Field(
        default="03:00",
        description="When beat starts the nightly subscription reconciliation, `HH:MM` UTC.",
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    stripe_rate_limit_test: float = Field(
        default=20,
        gt=0,
        description=(
            "The reconciliation's own ceiling on Stripe requests per second in test mode, "
            "below Stripe's 25/s so that the nightly scan leaves room for the platform's calls."
        ),
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    stripe_rate_limit_live: float = Field(
        default=80,
        gt=0,
        description="The same ceiling in live mode, below Stripe's 100/s.",
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    dispute_lost_action: Literal["none", "cancel_subscription"] = Field(
        default="none",
        description=(
            "What a lost chargeback does to the customer's subscription besides keeping the "
            "credit hold: `none`, or `cancel_subscription` to end it."
        ),
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    efw_action: Literal["hold", "refund", "refund_and_cancel"] = Field(
        default="hold",
        description=(
            "What an early fraud warning does besides holding back its charge's credits and "
            "alerting the admins: `hold` (only that), `refund` (refund an actionable warning's "
            "charge of at most `EFW_AUTO_REFUND_MAX_AMOUNT`, which Stripe recommends to avoid "
            "the dispute), or `refund_and_cancel` (that, and cancel the customer's subscription)."
        ),
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    efw_auto_refund_max_amount: int = Field(
        default=0,
        ge=0,
        description=(
            "The largest charge (minor units of its currency) an early fraud warning refunds "
            "automatically under `EFW_ACTION=refund`; 0: never."
        ),
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        le=10,
        description=(
            "How many reverse proxies in front of the API append to `X-Forwarded-For`: the "
            "buyer's IP recorded at Checkout (dispute evidence) is the address that many hops "
            "from the right; 0: the connection's own address."
        ),
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    refund_policy_url: str = Field(
        default="",
        description="The refund policy's address, cited in dispute evidence drafts.",
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    terms_url: str = Field(
        default="",
        description="The terms of service's address, cited in dispute evidence drafts.",
        json_schema_extra={"section": "Reconciliation and disputes"},
    )
    dispute_ratio_visa_threshold: float = Field(
        default=0.015,
        gt=0,
        le=1,
        description=(
            "Visa's monitoring ratio (VAMP: fraud reports plus disputes over settled "
            "transactions in a month) at which a merchant is enrolled: 1.5% since April 2026 "
            "(docs/billing-rules.md names the source)."
        ),
        json_schema_extra={"section": "Dispute monitoring"},
    )
    dispute_count_visa_threshold: int = Field(
        default=1500,
        ge=0,
        description="The count of fraud reports plus disputes VAMP also requires: 1,500.",
        json_schema_extra={"section": "Dispute monitoring"},
    )
    dispute_ratio_mastercard_threshold: float = Field(
        default=0.015,
        gt=0,
        le=1,
        description=(
            "Mastercard's Excessive Chargeback Program ratio (chargebacks over the previous "
            "month's transactions): 1.5%."
        ),
        json_schema_extra={"section": "Dispute monitoring"},
    )
    dispute_count_mastercard_threshold: int = Field(
        default=100,
        ge=0,
        description="The chargeback count the Excessive Chargeback Program also requires: 100.",
        json_schema_extra={"section": "Dispute monitoring"},
    )
    dispute_ratio_warning_share: float = Field(
        default=0.7,
        gt=0,
        lt=1,
        description=(
            "A network's ratio reads `warning` once both the ratio and the count reach this "
            "share of their thresholds (admins are emailed once per month and status)."
        ),
        json_schema_extra={"section": "Dispute monitoring"},
    )
    dispute_ratios_at: str = Field(
        default="07:00",
        description="When the daily check of the network monitoring ratios runs, `HH:MM` UTC.",
        json_schema_extra={"section": "Dispute monitoring"},
    )
    dispute_reminders_at: str = Field(
        default="08:00",
        description="When the daily dispute evidence-deadline reminders go out, `HH:MM` UTC.",
        json_schema_extra={"section": "Reconciliation and disputes"},
    )

    renewal_notice_monthly: bool = Field(
        default=False,
        description=(
            "Send the `renewal_upcoming` notice (on `invoice.upcoming`) for monthly plans too. "
            "Plans billed yearly or longer always get it, as auto-renewal laws ask."
        ),
        json_schema_extra={"section": "Email"},
    )
    checkout_recovery_emails: bool = Field(
        default=False,
        description=(
            "Email a customer whose Checkout Session expired unpaid, inviting them back, when "
            "the session collected their consent to promotional email "
            "(`consent.promotions = opt_in`). Off: expired sessions are only stored and counted."
        ),
        json_schema_extra={"section": "Email"},
    )

    sweep_interval_seconds: int = Field(
        default=60,
        gt=0,
        description=(
            "How often, in seconds, the sweeps look for events and emails stored but not processed."
        ),
        json_schema_extra={"section": "Sweep and retries"},
    )
    sweep_stale_after_seconds: int = Field(
        default=300,
        gt=0,
        description=(
            "How long, in seconds, a pending row waits since its last enqueue or claim before "
            "the sweep enqueues it again (so a claim by a dead worker expires)."
        ),
        json_schema_extra={"section": "Sweep and retries"},
    )
    task_max_retries: int = Field(
        default=8,
        ge=0,
        description=(
            "How many times a task retries a transient failure (a lost connection, a timeout, "
            "Stripe 5xx or 429), with backoff, before its row is marked `failed`."
        ),
        json_schema_extra={"section": "Sweep and retries"},
    )

    invoice_archive_url: str = Field(
        default="file://./var/invoices",
        description=(
            "Where invoice PDFs (and archived event months) are kept: `file://./var/invoices` "
            "(a directory, relative to the working directory; `file:///srv/invoices` for an "
            "absolute one) or `s3://bucket/prefix` (boto3, with its usual credentials: "
            "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, or a role)."
        ),
        json_schema_extra={"section": "Archive"},
    )
    s3_endpoint_url: str = Field(
        default="",
        description=(
            "The address of an S3-compatible server (MinIO, Ceph, R2...) for an `s3://` "
            "archive; empty: AWS S3 itself."
        ),
        json_schema_extra={"section": "Archive"},
    )
    invoice_pdf_allowed_hosts: str = Field(
        default="pay.stripe.com,files.stripe.com",
        description=(
            "The hosts an invoice PDF may be downloaded from (and redirected to), separated by "
            "commas; a PDF link to any other host is not fetched, and the platform renders its "
            "own PDF instead. Over https only, except when `APP_ENV=test`."
        ),
        json_schema_extra={"section": "Archive"},
    )
    invoice_pdf_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        description=(
            "The largest invoice PDF downloaded, in bytes; a larger one is not kept, and the "
            "platform renders its own PDF instead."
        ),
        json_schema_extra={"section": "Archive"},
    )
    invoice_pdf_timeout_seconds: float = Field(
        default=20,
        gt=0,
        description=(
            "How long one invoice PDF download may wait for the server, in seconds; a timeout "
            "is retried with backoff like a 5xx answer (up to `TASK_MAX_RETRIES` times)."
        ),
        json_schema_extra={"section": "Archive"},
    )

    webhook_events_retention_months: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Months of `webhook_events` kept online; older months are written to the archive "
            "(INVOICE_ARCHIVE_URL, under `webhook-events/`: gzipped JSON lines and a manifest "
            "with checksums) and then dropped, once a day. Unset: everything is kept. "
            "`billing events restore --month YYYY-MM` brings a month back."
        ),
        json_schema_extra={"section": "Archive"},
    )

    @field_validator("reconcile_at", "dispute_reminders_at", "dispute_ratios_at")
    @classmethod
    def _time_of_day_is_hh_mm(cls, value: str, info: ValidationInfo) -> str:
        if not _HH_MM.match(value):
            raise ValueError(f"{str(info.field_name).upper()} must be HH:MM in UTC, such as 03:00.")
        return value

    @field_validator("stripe_api_version")
    @classmethod
    def _api_version_is_dated(cls, value: str) -> str:
        if not _API_VERSION.match(value):
            raise ValueError(
                "STRIPE_API_VERSION must be a Stripe API version such as 2026-10-28.endive."
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_scheme(cls, value: str) -> str:
        if value and not value.startswith(("smtp://", "smtp+starttls://", "smtps://")):
            raise ValueError("SMTP_URL must start with smtp://, smtp+starttls:// or smtps://.")
        return value

    @field_validator("invoice_archive_url")
    @classmethod
    def _archive_url_names_a_store(cls, value: str) -> str:
        try:
            check_store_url(value)
        except ValueError as exc:
            raise ValueError(f"INVOICE_ARCHIVE_URL {exc}.") from None
        return value

    @field_validator("invoice_pdf_allowed_hosts")
    @classmethod
    def _allowed_hosts_are_host_names(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts or any("/" in h or ":" in h or " " in h for h in hosts):
            raise ValueError(
                "INVOICE_PDF_ALLOWED_HOSTS must be host names separated by commas, such as "
                "pay.stripe.com,files.stripe.com."
            )
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _s3_endpoint_is_http(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("S3_ENDPOINT_URL must be an http(s) URL, such as http://minio:9000.")
        return value

    @field_validator("refund_policy_url", "terms_url")
    @classmethod
    def _policy_url_is_absolute(cls, value: str, info: ValidationInfo) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(f"{str(info.field_name).upper()} must be an absolute http(s) URL.")
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

    @field_validator("broker_url")
    @classmethod
    def _broker_is_redis_or_rabbitmq(cls, value: str) -> str:
        if value and not value.startswith(BROKER_SCHEMES):
            raise ValueError("BROKER_URL must be a redis:// or amqp:// URL.")
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
    def invoice_pdf_hosts(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.invoice_pdf_allowed_hosts.split(",") if h.strip()
        )

    @property
    def invoice_pdf_schemes(self) -> tuple[str, ...]:
        """https only; tests serve their PDFs from a plain local HTTP server."""
        return ("https", "http") if self.app_env == "test" else ("https",)

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

    def price_variable(self, plan_id: str) -> str:
        """The variable that holds a plan's Stripe price id in the configured mode."""
        mode = "TEST" if self.stripe_test_mode else "LIVE"
        return f"{PRICE_VARIABLE_PREFIX}{plan_id.upper()}_{mode}"

    def price_id(self, plan_id: str) -> str | None:
        """A plan's Stripe price (or legacy plan) id in the configured mode; None when unset."""
        return getattr(self, self.price_variable(plan_id).lower(), "") or None

    @property
    def celery_broker_url(self) -> str:
        """Where tasks are published: BROKER_URL, else the Redis of REDIS_URL."""
        return self.broker_url or self.redis_url

    @property
    def broker_is_rabbitmq(self) -> bool:
        return self.celery_broker_url.startswith(AMQP_SCHEMES)

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
