"""`billing up` decides its ports, files and children's environment before it starts
anything; those decisions are tested here without starting a server."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.sample_events import placeholder_price
from cli.up.environment import DEVELOPMENT_ADMIN, development_defaults, platform_env
from cli.up.errors import UpError
from cli.up.plan import plan_run
from cli.up.ports import HOST, Ports, any_free_port, plan_ports
from cli.up.state import (
    PORTS_FILE,
    STATE_FILE,
    only_run_here,
    remember_ports,
    remembered_ports,
    write_run_state,
)
from core.settings import Settings, load_settings

BARE = {
    "app_env": "development",
    "stripe_secret_key_test": "",
    "stripe_secret_key_live": "",
    "stripe_price_starter_test": "",
    "stripe_price_pro_test": "",
    "stripe_price_team_test": "",
    "admin_emails": "",
}


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on for the test's duration."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def bare_development(**overrides: object) -> Settings:
    return load_settings(**{**BARE, **overrides})


# --- ports -----------------------------------------------------------------------------


def plan(**overrides: object) -> Ports:
    arguments: dict[str, object] = {
        "api": None,
        "remembered": {},
        "embedded_database": True,
        "embedded_redis": True,
        "mail_sink": True,
    }
    return plan_ports(**{**arguments, **overrides})  # type: ignore[arg-type]


def test_every_server_of_a_run_gets_its_own_port():
    ports = plan()
    chosen = [ports.api, ports.flower, ports.smtp, ports.postgres, ports.redis]
    assert None not in chosen
    assert len(set(chosen)) == len(chosen)


def test_the_port_asked_for_is_used():
    port = any_free_port()
    assert plan(api=port).api == port


def test_a_taken_port_asked_for_is_refused_in_one_sentence(listening: int):
    with pytest.raises(UpError, match=rf"^port {listening} \(--port\) is in use"):
        plan(api=listening)


def test_servers_the_settings_replace_get_no_port():
    ports = plan(embedded_database=False, embedded_redis=False, mail_sink=False)
    assert (ports.postgres, ports.redis, ports.smtp) == (None, None, None)


def test_the_servers_keep_their_last_ports_while_free():
    postgres, redis = any_free_port(), any_free_port()
    ports = plan(remembered={"postgres": postgres, "redis": redis})
    assert (ports.postgres, ports.redis) == (postgres, redis)


def test_a_remembered_port_someone_took_is_replaced(listening: int):
    assert plan(remembered={"postgres": listening}).postgres != listening


# --- state files ------------------------------------------------------------------------


def test_remembered_ports_round_trip_without_the_servers_not_started(tmp_path: Path):
    remember_ports(tmp_path, Ports(api=1, flower=2, smtp=3, postgres=5433, redis=None))
    assert json.loads((tmp_path / PORTS_FILE).read_text()) == {"postgres": 5433}
    assert remembered_ports(tmp_path) == {"postgres": 5433}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[5432]",
        '{"api": 8000, "postgres": "5432", "redis": 70000}',
    ],
)
def test_an_odd_ports_file_remembers_nothing(tmp_path: Path, text: str):
    (tmp_path / PORTS_FILE).write_text(text)
    assert remembered_ports(tmp_path) == {}


def test_no_ports_file_remembers_nothing(tmp_path: Path):
    assert remembered_ports(tmp_path) == {}


def test_the_run_state_is_private_and_names_api_secret_and_prices(tmp_path: Path):
    (tmp_path / STATE_FILE).write_text("left by a killed run")
    write_run_state(
        tmp_path,
        api_url="http://127.0.0.1:8001",
        webhook_secret="whsec_x",
        settings={"STRIPE_PRICE_PRO_TEST": "price_pro_local"},
    )
    path = tmp_path / STATE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state = json.loads(path.read_text())
    assert state["api_url"] == "http://127.0.0.1:8001"
    assert state["webhook_secret"] == "whsec_x"
    assert state["settings"] == {"STRIPE_PRICE_PRO_TEST": "price_pro_local"}
    assert isinstance(state["pid"], int)


def test_a_second_run_in_the_same_directory_is_refused(tmp_path: Path):
    refused = pytest.raises(UpError, match="another billing up is running")
    with only_run_here(tmp_path), refused, only_run_here(tmp_path):
        pass
    with only_run_here(tmp_path):  # released on exit
        pass


# --- the children's environment ---------------------------------------------------------


def test_a_bare_development_checkout_gets_made_up_prices_and_an_admin():
    assert development_defaults(bare_development()) == {
        "STRIPE_PRICE_STARTER_TEST": placeholder_price("starter"),
        "STRIPE_PRICE_PRO_TEST": placeholder_price("pro"),
        "STRIPE_PRICE_TEAM_TEST": placeholder_price("team"),
        "ADMIN_EMAILS": DEVELOPMENT_ADMIN,
    }


def test_configured_prices_and_admins_are_kept():
    settings = bare_development(stripe_price_pro_test="price_real", admin_emails="ops@x.test")
    assert set(development_defaults(settings)) == {
        "STRIPE_PRICE_STARTER_TEST",
        "STRIPE_PRICE_TEAM_TEST",
    }


def test_live_mode_defaults_name_the_live_variables():
    settings = bare_development(
        stripe_test_mode=False,
        stripe_price_starter_live="",
        stripe_price_pro_live="",
        stripe_price_team_live="",
    )
    prices = {name for name in development_defaults(settings) if name.startswith("STRIPE_")}
    assert prices == {
        "STRIPE_PRICE_STARTER_LIVE",
        "STRIPE_PRICE_PRO_LIVE",
        "STRIPE_PRICE_TEAM_LIVE",
    }


def test_with_a_stripe_key_no_price_is_made_up():
    settings = bare_development(stripe_secret_key_test="sk_test_x")
    assert development_defaults(settings) == {"ADMIN_EMAILS": DEVELOPMENT_ADMIN}


def test_outside_development_nothing_is_made_up():
    assert development_defaults(bare_development(app_env="test")) == {}


@pytest.fixture
def bare_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with nothing configured: no variables `billing up` reads, no .env file."""
    monkeypatch.chdir(tmp_path)
    for variable in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    return tmp_path


def test_a_bare_run_plans_embedded_servers_a_sink_and_a_kept_secret(bare_environment: Path):
    first = plan_run(bare_development(), api_port=None, var_dir=bare_environment)
    assert first.ports.postgres and first.ports.redis and first.ports.smtp
    assert first.secret_generated and first.webhook_secret.startswith("whsec_")
    assert first.log_format == "text"
    again = plan_run(bare_development(), api_port=None, var_dir=bare_environment)
    assert again.webhook_secret == first.webhook_secret
    assert remembered_ports(bare_environment) == {
        "postgres": again.ports.postgres,
        "redis": again.ports.redis,
    }


def test_the_children_get_this_run_s_urls_secret_and_defaults(bare_environment: Path):
    settings = bare_development(database_url="postgresql://u@db:5432/b", smtp_url="smtp://m:25")
    planned = plan_run(settings, api_port=None, var_dir=bare_environment)
    assert planned.ports.postgres is None and planned.ports.smtp is None
    env = platform_env(planned, sink_url=None)
    assert env["DATABASE_URL"] == "postgresql://u@db:5432/b"
    assert env["SMTP_URL"] == "smtp://m:25"
    assert env["STRIPE_WEBHOOK_SECRET"] == planned.webhook_secret
    assert env["LOG_FORMAT"] == "text"
    assert env["STRIPE_PRICE_PRO_TEST"] == placeholder_price("pro")


def test_the_sink_receives_the_mail_when_smtp_url_is_unset(bare_environment: Path):
    planned = plan_run(bare_development(), api_port=None, var_dir=bare_environment)
    env = platform_env(planned, sink_url="smtp://127.0.0.1:1026")
    assert env["SMTP_URL"] == "smtp://127.0.0.1:1026"
