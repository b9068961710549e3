"""Test set-up: two tiers, a database of this run's own, a Redis key prefix of its own, a
RabbitMQ virtual host of its own.

Tests under `tests/unit/` are pure: no PostgreSQL, no Redis, no worker or API process
(`pytest -m "not services"` runs them alone, in seconds, with neither server up). Every other
test is marked `services` here, so nobody has to remember the marker.

The run's environment is fixed here, before any project module reads its settings. When at
least one selected test is a `services` test, the run creates `billing_test_<random>` on the
PostgreSQL at TEST_POSTGRES_URL (default: the local server, trust auth), migrates it, and at
the end drops it and deletes the run's Redis keys, so two runs never collide. Every test
makes its own event ids, so tests own their rows and need no order.

The spine's tests (tests/test_event_processing.py) run on both brokers through the `broker`
fixture: Redis, and RabbitMQ at TEST_RABBITMQ_URL (default the local server, guest) in a
virtual host `billing-test-<random>` that the first such test creates with `rabbitmqctl`
and the end of the run deletes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from tests.support.processes import ApiProcess, WorkerProcess, free_port
from tests.support.smtp import RecordingHandler, start_smtp_server

if TYPE_CHECKING:
    from core.settings import Settings

RUN_ID = uuid.uuid4().hex[:10]
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE_NAME = f"billing_test_{RUN_ID}"
SERVER_URL = ADMIN_URL.rsplit("/", 1)[0]

RABBITMQ_SERVER_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
RABBITMQ_USER = RABBITMQ_SERVER_URL.split("://", 1)[1].split(":", 1)[0]
RABBITMQ_VHOST = f"billing-test-{RUN_ID}"
RABBITMQ_URL = f"{RABBITMQ_SERVER_URL.rstrip('/')}/{RABBITMQ_VHOST}"

SMTP_PORT = free_port()
# The run's invoice archive (a directory of its own) and the PDF host the tests serve from.
ARCHIVE_DIR = Path(tempfile.gettempdir()) / f"billing-test-{RUN_ID}" / "invoices"
TEST_PDF_HOST = "127.0.0.1"
WEBHOOK_SECRET = "whsec_test_current"
ROTATED_SECRET = "whsec_test_previous"
ADMIN_TOKEN = "test-admin-token"
JWT_SECRET = "test-jwt-secret-of-the-host-application-" + "0123456789abcdef" * 2

os.environ.update(
    APP_ENV="test",
    DATABASE_URL=f"{SERVER_URL.replace('postgresql://', 'postgresql+psycopg://')}/{DATABASE_NAME}",
    REDIS_URL=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    BROKER_KEY_PREFIX=f"test-{RUN_ID}:",
    STRIPE_WEBHOOK_SECRET=f"{WEBHOOK_SECRET},{ROTATED_SECRET}",
    ADMIN_API_TOKEN=ADMIN_TOKEN,
    AUTH_JWT_SECRET=JWT_SECRET,
    APP_BILLING_URL="https://app.example.com/billing",
    STRIPE_SECRET_KEY_TEST="",
    STRIPE_SECRET_KEY_LIVE="",
    STRIPE_API_BASE="",
    SENTRY_DSN="",
    SMTP_URL=f"smtp://127.0.0.1:{SMTP_PORT}",
    EMAIL_FROM="billing@example.com",
    ADMIN_EMAILS="ops@example.com,cfo@example.com",
    PRODUCT_NAME="Example SaaS",
    STRIPE_TEST_MODE="true",
    STRIPE_PRICE_STARTER_TEST="price_starter_test",
    STRIPE_PRICE_PRO_TEST="price_pro_test",
    STRIPE_PRICE_TEAM_TEST="price_team_test",
    PLANS_FILE="",
    INVOICE_ARCHIVE_URL=f"file://{ARCHIVE_DIR}",
    # Test-only: PDFs come from the tests' own HTTP server on loopback (plain http is allowed
    # only when APP_ENV=test); the fixtures' pay.stripe.com links are refused by host, so
    # their invoices get the platform's own PDF without any download leaving the machine.
    INVOICE_PDF_ALLOWED_HOSTS=TEST_PDF_HOST,
)


UNIT_TESTS = Path(__file__).parent / "unit"
_DATABASE_CREATED = pytest.StashKey[bool]()
_VHOST_CREATED: list[bool] = []


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: it reads these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything outside tests/unit needs PostgreSQL and Redis: marked `services`."""
    for item in items:
        if UNIT_TESTS not in item.path.parents:
            item.add_marker(pytest.mark.services)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `-m "not services"`, nothing outside tests/unit could run: not even imported."""
    if " ".join(config.option.markexpr.split()) != "not services":
        return None  # any other expression: everything is collected, then `-m` selects
    if UNIT_TESTS.parent not in collection_path.parents:
        return None  # tests/ itself, or a path outside it
    if collection_path == UNIT_TESTS or UNIT_TESTS in collection_path.parents:
        return None
    if collection_path.is_dir() or collection_path.name.startswith("test_"):
        return True
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """The run's database, once selection is done, and only if a selected test needs it."""
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("services") for item in session.items):
        return
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    except psycopg.OperationalError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        pytest.exit(
            f"the services tests need PostgreSQL at {ADMIN_URL} ({reason}); "
            'run `pytest -m "not services"` for the unit tests alone',
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    session.config.stash[_DATABASE_CREATED] = True
    from core.settings import get_settings
    from db.migrate import upgrade

    upgrade(get_settings())


def pytest_unconfigure(config: pytest.Config) -> None:
    if not config.stash.get(_DATABASE_CREATED, False):
        return  # a unit-only run: it created nothing and may have no server to ask
    from db.session import get_engine

    get_engine().dispose()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
    _delete_broker_keys()
    shutil.rmtree(ARCHIVE_DIR.parent, ignore_errors=True)
    if _VHOST_CREATED:
        _rabbitmqctl("delete_vhost", RABBITMQ_VHOST)


def _delete_broker_keys() -> None:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{os.environ['BROKER_KEY_PREFIX']}*", count=1000))
    if keys:
        client.delete(*keys)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def _rabbitmq_vhost() -> str:
    """The run's own virtual host: its queues and messages are nobody else's."""
    _rabbitmqctl("add_vhost", RABBITMQ_VHOST)
    _VHOST_CREATED.append(True)
    _rabbitmqctl("set_permissions", "-p", RABBITMQ_VHOST, RABBITMQ_USER, ".*", ".*", ".*")
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def _rabbitmq_worker(_rabbitmq_vhost: str) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env={"BROKER_URL": _rabbitmq_vhost})
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def _rabbitmq_api(_rabbitmq_vhost: str) -> Iterator[ApiProcess]:
    api = ApiProcess(env={"BROKER_URL": _rabbitmq_vhost})
    api.start()
    yield api
    api.stop()


@dataclass
class Broker:
    """One broker the spine runs on: its URL and the run's worker and API on it."""

    name: str
    url: str
    worker: WorkerProcess
    request: pytest.FixtureRequest

    def client(self, **overrides: object) -> TestClient:
        """An in-process app publishing to this broker."""
        return make_client(**{"broker_url": self.url, **overrides})

    def api_server(self) -> ApiProcess:
        """`billing api` over real HTTP, publishing to this broker."""
        if self.name == "redis":
            return self.request.getfixturevalue("api_server")
        return self.request.getfixturevalue("_rabbitmq_api")


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    """Each broker in turn, with its worker running; the sweep in this process publishes to it."""
    from core.settings import load_settings
    from tasks.celery_app import publisher_app
    from tasks.events import outbox

    if request.param == "redis":
        url, worker = os.environ["REDIS_URL"], request.getfixturevalue("_worker_process")
    else:
        url, worker = RABBITMQ_URL, request.getfixturevalue("_rabbitmq_worker")
    worker.ensure_running()
    publisher = publisher_app(load_settings(broker_url=url))
    monkeypatch.setattr(outbox, "app", publisher)
    yield Broker(name=request.param, url=url, worker=worker, request=request)
    publisher.close()


@pytest.fixture
def settings() -> Settings:
    from core.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[RecordingHandler]:
    """The SMTP server at SMTP_URL; what it received, by recipient."""
    controller, handler = start_smtp_server(SMTP_PORT)
    yield handler
    controller.stop()


@pytest.fixture(scope="session")
def _worker_process() -> Iterator[WorkerProcess]:
    worker = WorkerProcess()
    yield worker
    worker.stop()


@pytest.fixture
def worker(_worker_process: WorkerProcess) -> WorkerProcess:
    """The run's Celery worker subprocess, started again if a test killed it."""
    _worker_process.ensure_running()
    return _worker_process


@pytest.fixture(scope="session")
def api_server() -> Iterator[ApiProcess]:
    """`billing api` under uvicorn, over real HTTP."""
    api = ApiProcess()
    api.start()
    yield api
    api.stop()


def make_client(**overrides: object) -> TestClient:
    """An in-process app (lifespan included) on these settings; use it as a context manager."""
    from api.app import create_app
    from core.settings import load_settings

    return TestClient(create_app(load_settings(**overrides)), raise_server_exceptions=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def sentry_events() -> Iterator[list[dict]]:
    """Sentry on, with every event kept here instead of sent (the SDK's own hook)."""
    captured: list[dict] = []

    def keep(event: dict, hint: dict) -> None:
        captured.append(event)
        return None

    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1", before_send=keep, default_integrations=False
    )
    yield captured
    sentry_sdk.init(dsn=None)
