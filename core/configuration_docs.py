"""docs/configuration.md, generated from `Settings` so that the page cannot drift from the code.

    python -m core.configuration_docs           # print the page
    python -m core.configuration_docs --write   # write docs/configuration.md (`make docs`)

Each field's `description` and `json_schema_extra["section"]` are declared beside it in
core/settings.py; this module only lays them out. The refusals are not copied from the
validators: each is an example configuration that the validators are run on, and the page
shows the sentence they answer with.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from core.settings import Settings, _first_sentence

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

# The sections in page order, each with a sentence or two above its table ("" for none).
SECTIONS: dict[str, str] = {
    "Runtime": (
        "What `billing up` does with nothing set is described in "
        "[operations.md](operations.md#running-on-one-machine-billing-up)."
    ),
    "Database and broker": "",
    "Stripe": (
        "The platform uses the `_TEST` or the `_LIVE` variables, as `STRIPE_TEST_MODE` says. "
        "Each paid plan of the catalogue (`starter`, `pro`, `team`) has its price id in "
        "`STRIPE_PRICE_<PLAN>_LIVE` / `_TEST`."
    ),
    "Webhook endpoint": (
        "The webhook is `POST /api/stripe/webhook`; see "
        "[operations.md](operations.md#pointing-stripe-at-it)."
    ),
    "Email": "What is sent, and when: [billing-rules.md](billing-rules.md#emails).",
    "Access": "",
    "Observability": (
        "Sentry, logs and Prometheus: [operations.md](operations.md#watching-it). "
        "`PROMETHEUS_MULTIPROC_DIR` is listed under "
        "[Outside the Settings class](#outside-the-settings-class)."
    ),
    "Reconciliation and disputes": "",
    "Dispute monitoring": (
        "Visa's and Mastercard's monitoring programs, and where the defaults come from: "
        "[billing-rules.md](billing-rules.md#network-monitoring-ratios)."
    ),
    "Sweep and retries": "",
    "Host application": "",
    "Archive": (
        "Invoice PDFs are archived as described in "
        "[operations.md](operations.md#the-invoice-archive)."
    ),
}

INTRO = """\
# Configuration

<!-- Generated from core/settings.py by `make docs` (python -m core.configuration_docs --write).
     Edit the field descriptions there, not this page. -->

Every setting is an environment variable; a `.env` file in the working directory is read too
(a variable set in the environment wins over it). Names are case-insensitive, and a variable
the platform does not know is ignored. A number must lie within the bounds its row gives.
Under Docker Compose, [deploy/compose.env.example](../deploy/compose.env.example) lists every
variable with a production value.

A setting that cannot be used stops start-up with one sentence naming the variable: see
[Refusals](#refusals).
"""

OUTSIDE_SETTINGS = """\
## Outside the Settings class

| variable | read by | meaning |
| --- | --- | --- |
| `PROMETHEUS_MULTIPROC_DIR` | prometheus-client | an empty directory per container when it \
runs several API or pool processes; `billing up` sets `var/prometheus` |
| `TEST_POSTGRES_URL`, `TEST_REDIS_URL`, `TEST_RABBITMQ_URL` | the test suite | the PostgreSQL \
role that may create databases (default `postgresql://postgres@127.0.0.1:5432/postgres`), the \
Redis of `make test` (default `redis://127.0.0.1:6379/0`) and its RabbitMQ (default \
`amqp://guest:guest@127.0.0.1:5672`, a virtual host per run made with `rabbitmqctl`) |
| `HYPOTHESIS_PROFILE` | the fuzz tests | `default` (bounded, in `make test`) or `long` \
(`make fuzz`) |
| `BENCH_PG_ADMIN_URL`, `REDIS_URL` | the benchmarks | see [performance.md](performance.md) |
"""

# A production configuration the validators accept; each production refusal changes one thing.
_PRODUCTION: dict[str, Any] = {
    "app_env": "production",
    "stripe_test_mode": False,
    "stripe_secret_key_live": "sk_live_example",
    "stripe_webhook_secret": "whsec_example",
}
PRODUCTION_REFUSALS: tuple[dict[str, Any], ...] = (
    {**_PRODUCTION, "stripe_test_mode": True},
    {**_PRODUCTION, "stripe_webhook_secret": ""},
    {**_PRODUCTION, "stripe_secret_key_live": ""},
    {**_PRODUCTION, "auth_jwt_secret": "short"},
)
ALWAYS_REFUSED: tuple[dict[str, Any], ...] = (
    {"stripe_secret_key_live": "sk_test_example"},
    {"stripe_secret_key_test": "sk_live_example"},
    {"database_url": "mysql://db.example.com/billing"},
    {"smtp_url": "mail.example.com:25"},
    {"app_billing_url": "/billing"},
    {"reconcile_at": "3am"},
    {"dispute_reminders_at": "8am"},
    {"invoice_archive_url": "ftp://files.example.com/invoices"},
    {"s3_endpoint_url": "minio:9000"},
)
FLOWER_REFUSAL = (
    "Flower (`billing flower`, the `flower` service) refuses to start without "
    "`FLOWER_BASIC_AUTH` unless `APP_ENV=development` and it listens on 127.0.0.1 only."
)


def render() -> str:
    """The whole page, from the Settings class alone (never from the environment)."""
    fields = Settings.model_fields
    parts = [INTRO, _contents()]
    for section, intro in SECTIONS.items():
        rows = [_row(name, field) for name, field in fields.items() if section_of(field) == section]
        parts.append(f"## {section}\n\n" + (f"{intro}\n\n" if intro else "") + _table(rows))
    parts += [OUTSIDE_SETTINGS, _refusals()]
    return "\n".join(parts)


def section_of(field: FieldInfo) -> str | None:
    """The section declared beside the field, `json_schema_extra={"section": ...}`."""
    extra = field.json_schema_extra
    section = extra.get("section") if isinstance(extra, Mapping) else None
    return section if isinstance(section, str) else None


def refusal(overrides: dict[str, Any]) -> str:
    """The sentence the validators refuse `overrides` with (the environment is not read)."""
    try:
        Settings.model_validate(overrides)
    except ValidationError as exc:
        return _first_sentence(exc)
    raise AssertionError(f"the validators accept {overrides}, listed as a refusal")


def _contents() -> str:
    titles = [*SECTIONS, "Outside the Settings class", "Refusals"]
    return "".join(f"- [{title}](#{_anchor(title)})\n" for title in titles)


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def _row(name: str, field: FieldInfo) -> tuple[str, str, str]:
    meaning = " ".join(filter(None, [field.description or "", _bounds(field)]))
    return f"`{name.upper()}`", _default(field.default), meaning


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: object) -> str:
    """Shown as an operator would write it; an empty string is "(empty)"."""
    if value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _bounds(field: FieldInfo) -> str:
    """The numeric constraints (pydantic keeps each as an object with one attribute)."""
    low = high = None
    for constraint in field.metadata:
        for attribute, wording in _BOUNDS.items():
            value = getattr(constraint, attribute, None)
            if value is None:
                continue
            if attribute in ("gt", "ge"):
                low = wording.format(value)
            else:
                high = wording.format(value)
    bounds = ", ".join(filter(None, [low, high]))
    return f"({bounds.capitalize()}.)" if bounds else ""


_BOUNDS = {"gt": "above {}", "ge": "{} or more", "lt": "below {}", "le": "at most {}"}


def _refusals() -> str:
    production = "".join(f"- {refusal(example)}\n" for example in PRODUCTION_REFUSALS)
    always = "".join(f"- {refusal(example)}\n" for example in ALWAYS_REFUSED)
    return (
        "## Refusals\n\n"
        "A setting that cannot be used stops start-up with one sentence naming the variable, "
        "for example\n`billing: configuration error: "
        f"{refusal(PRODUCTION_REFUSALS[0])}`\n\n"
        "### In production\n\n"
        f"With `APP_ENV=production`:\n\n{production}\n"
        "### Everywhere\n\n"
        f"{always}- A number outside the bounds its row gives, or a value of `APP_ENV`, "
        "`LOG_FORMAT` or `DISPUTE_LOST_ACTION` that its row does not name.\n"
        f"- {FLOWER_REFUSAL}\n"
    )


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        PAGE.write_text(render())
        print(f"wrote {PAGE}")
        return 0
    if argv:
        print("usage: python -m core.configuration_docs [--write]", file=sys.stderr)
        return 2
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
