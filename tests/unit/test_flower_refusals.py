"""`billing flower` refuses to serve Flower unprotected: the credentials it reads, the
addresses it calls loopback, and what it hands Flower. Nothing here starts a Flower that
serves (the real one, next to a real worker, is tests/test_flower.py)."""

from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner

from cli.flower import check_exposure, flower, is_loopback, parse_basic_auth
from core.settings import ConfigurationError, load_settings
from tests.support.processes import BILLING, free_port

PASSWORD = "flower-pass-3f9a"
SECOND_PASSWORD = "other-pass-71c2"


def run_billing_flower(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLING, "flower", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_flower_without_auth_on_every_interface_exits_2_naming_the_variable():
    result = run_billing_flower(
        "--address",
        "0.0.0.0",
        "--port",
        str(free_port()),
        APP_ENV="development",
        FLOWER_BASIC_AUTH="",
    )

    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert "0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_malformed_flower_basic_auth_exits_2_without_echoing_it():
    result = run_billing_flower(
        "--port", str(free_port()), FLOWER_BASIC_AUTH=f"ops:{PASSWORD},audit{SECOND_PASSWORD}"
    )

    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert "entry 2" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert SECOND_PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def flower_start(monkeypatch) -> list[tuple[list[str], str | None]]:
    """Flower's start replaced by a recorder of its arguments and of FLOWER_BASIC_AUTH as
    Flower would see it: the command runs in-process and nothing serves."""
    started: list[tuple[list[str], str | None]] = []

    def record(app, argv=None) -> None:
        started.append((argv, os.environ.get("FLOWER_BASIC_AUTH")))

    monkeypatch.setattr("celery.Celery.start", record)
    # Left alone, it would reconfigure the logging of the whole test process.
    monkeypatch.setattr("core.log_setup.configure_logging", lambda *a, **k: None)
    return started


def test_flower_gets_the_validated_credentials_and_not_the_raw_variable(flower_start):
    result = CliRunner().invoke(
        flower,
        ["--address", "0.0.0.0", "--port", "5601"],
        env={"FLOWER_BASIC_AUTH": " ops:a:b , audit:c"},
    )

    assert result.exit_code == 0, result.output
    argv = ["flower", "--port=5601", "--address=0.0.0.0", "--unix_socket="]
    # None: Flower would otherwise read the variable again by itself, unvalidated.
    assert flower_start == [([*argv, "--basic_auth=ops:a:b,audit:c"], None)]


def test_development_flower_on_loopback_starts_without_auth(flower_start):
    result = CliRunner().invoke(flower, [], env={"APP_ENV": "development", "FLOWER_BASIC_AUTH": ""})

    assert result.exit_code == 0, result.output
    assert flower_start == [
        (["flower", "--port=5555", "--address=127.0.0.1", "--unix_socket="], None)
    ]


@pytest.mark.parametrize(
    ("app_env", "address"),
    [
        ("test", "127.0.0.1"),
        ("production", "127.0.0.1"),
        ("development", "0.0.0.0"),
        ("development", "::"),
        ("development", "10.1.2.3"),
        ("development", "flower.internal"),
    ],
)
def test_flower_without_auth_is_refused_outside_development_loopback(
    app_env, address, flower_start
):
    env = {"APP_ENV": app_env, "FLOWER_BASIC_AUTH": ""}
    if app_env == "production":
        env.update(STRIPE_TEST_MODE="false", STRIPE_SECRET_KEY_LIVE="sk_live_placeholder")

    result = CliRunner().invoke(flower, ["--address", address], env=env)

    assert result.exit_code == 2
    assert "FLOWER_BASIC_AUTH" in result.output


@pytest.mark.parametrize(
    "raw",
    ["ops", "ops:", ":secret", "ops secret", "ops:secret,", "ops:secret,,audit:x", ","],
)
def test_malformed_flower_basic_auth_is_refused_with_one_sentence(raw):
    with pytest.raises(ConfigurationError) as refusal:
        parse_basic_auth(raw)

    message = str(refusal.value)
    assert message.startswith("FLOWER_BASIC_AUTH must be user:password pairs")
    assert message.count(". ") == 0 and message.endswith(".")
    assert "secret" not in message


def test_flower_basic_auth_accepts_several_users_and_colons_in_passwords():
    assert parse_basic_auth("") == ()
    assert parse_basic_auth("ops:a:b, audit:c") == ("ops:a:b", "audit:c")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.20", False),
        ("flower.internal", False),
    ],
)
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback


def test_development_may_run_flower_without_auth_on_loopback_only():
    development = load_settings(app_env="development", flower_basic_auth="")

    check_exposure(development, address="127.0.0.1", credentials=())
    check_exposure(development, address="localhost", credentials=())
    check_exposure(development, address="0.0.0.0", credentials=("ops:secret",))
    with pytest.raises(ConfigurationError, match="FLOWER_BASIC_AUTH"):
        check_exposure(development, address="0.0.0.0", credentials=())
