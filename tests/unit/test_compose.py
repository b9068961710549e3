"""docker-compose.yml, the Dockerfile and the example env files, checked without Docker.

These machines have the docker client only (no engine, no compose plugin), so the file is
read with PyYAML and held against the real things: the `billing` click CLI, Celery's own
commands, the Settings class. The healthcheck commands also run for real, against a worker,
beat and API (tests/test_compose_healthchecks.py), since a healthcheck that always passes is
worse than none.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest

from cli.flower import check_exposure, parse_basic_auth
from core.plans import load_catalogue
from core.settings import ConfigurationError, Settings, load_settings
from tests.support.compose import ROOT, SERVICES, healthcheck

PLATFORM = (
    "migrate",
    "api",
    "worker",
    "email-worker",
    "beat",
    "flower",
    "api-replica",
    "emails-worker",
    "maintenance-worker",
)
# The services of the `scale` profile (RabbitMQ, a second API replica behind Caddy, a worker
# for each queue); the others start without any profile.
SCALE = ("rabbitmq", "api-replica", "proxy", "emails-worker", "maintenance-worker")
LONG_RUNNING = tuple(name for name in SERVICES if name != "migrate")
ENV_FILE = "deploy/compose.env"
POSTGRES_ENV_FILE = "deploy/postgres.env"
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
# What an operator must fill in before the example starts (it fails closed without them).
OPERATOR_VALUES = {
    "STRIPE_SECRET_KEY_LIVE": "sk_live_operator",
    "STRIPE_WEBHOOK_SECRET": "whsec_operator",
    "FLOWER_BASIC_AUTH": "ops:operator-password",
}


# --- reading the files ------------------------------------------------------------------------

_ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def read_env_example(path: Path) -> tuple[dict[str, str], set[str]]:
    """The assigned variables, and the names shown commented out (`# NAME=default`)."""
    assigned: dict[str, str] = {}
    commented: set[str] = set()
    for line in path.read_text().splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match is None:
            continue
        if match.group(1):
            commented.add(match.group(2))
        else:
            assert match.group(2) not in assigned, f"{match.group(2)} is set twice in {path}"
            assigned[match.group(2)] = match.group(3)
    return assigned, commented


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Each build stage's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), " ".join(arguments.split())))
    return stages


def env_files(service: dict[str, Any]) -> list[str]:
    value = service.get("env_file", [])
    return [value] if isinstance(value, str) else list(value)


def billing_commands() -> dict[str, list[str]]:
    """Every `billing ...` command line of the Compose file and the image's default one."""
    commands = {
        name: service["command"]
        for name, service in SERVICES.items()
        if isinstance(service.get("command"), list) and service["command"][0] == "billing"
    }
    final_stage = dockerfile_stages()[-1]
    commands["Dockerfile CMD"] = json.loads(next(a for k, a in final_stage if k == "CMD"))
    return commands


# --- services ---------------------------------------------------------------------------------


def test_every_service_has_a_healthcheck_or_is_the_one_shot_migration():
    assert set(SERVICES) == {"postgres", "redis", "mailpit", "rabbitmq", "proxy", *PLATFORM}
    for name in LONG_RUNNING:
        test = SERVICES[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert not SERVICES[name]["healthcheck"].get("disable"), name
    assert "healthcheck" not in SERVICES["migrate"]
    assert SERVICES["migrate"]["restart"] == "no"


def test_long_running_services_come_back_after_a_crash():
    for name in LONG_RUNNING:
        assert SERVICES[name].get("restart") in ("unless-stopped", "always"), name


def test_services_wait_for_their_dependencies_to_be_healthy_or_migrated():
    expected = {
        "migrate": {"postgres"},
        "api": {"migrate", "postgres", "redis"},
        "worker": {"migrate", "postgres", "redis"},
        "email-worker": {"migrate", "postgres", "redis"},
        "beat": {"migrate", "redis"},
        "flower": {"migrate", "redis"},
        "api-replica": {"migrate", "postgres", "rabbitmq"},
        "emails-worker": {"migrate", "postgres", "rabbitmq"},
        "maintenance-worker": {"migrate", "postgres", "rabbitmq"},
        "proxy": {"api-replica"},
    }
    for name, needs in expected.items():
        depends_on = SERVICES[name]["depends_on"]
        assert set(depends_on) == needs, name
        for dependency, condition in depends_on.items():
            wanted = (
                "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            )
            assert condition == {"condition": wanted}, f"{name} -> {dependency}"
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[dependency]


def test_the_worker_can_be_scaled():
    for name, service in SERVICES.items():
        assert "container_name" not in service, f"{name}: a fixed name stops --scale"
    assert "ports" not in SERVICES["worker"]


def test_events_have_a_worker_pool_of_their_own():
    # Slow SMTP must not take the slots events need: each queue group has its workers.
    assert SERVICES["worker"]["command"] == ["billing", "worker", "-Q", "webhooks"]
    emails = SERVICES["email-worker"]["command"]
    assert emails[:4] == ["billing", "worker", "-Q", "emails,maintenance"]
    assert "ports" not in SERVICES["email-worker"]


def test_published_ports_are_on_the_hosts_loopback_only():
    published = {name: s["ports"] for name, s in SERVICES.items() if "ports" in s}
    assert set(published) == {"api", "flower", "mailpit", "proxy"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to everyone"


def test_the_platform_services_run_the_projects_image_with_the_env_file():
    for name in PLATFORM:
        service = SERVICES[name]
        assert service["build"] == ".", name
        assert env_files(service) == [ENV_FILE], name
    assert len({SERVICES[name]["image"] for name in PLATFORM}) == 1
    # The database superuser's variables stay with the database container.
    assert env_files(SERVICES["postgres"]) == [POSTGRES_ENV_FILE]
    for path in (ENV_FILE, POSTGRES_ENV_FILE):
        assert (ROOT / f"{path}.example").is_file(), f"{path}.example is missing"


def test_the_healthchecks_ask_the_right_thing():
    def port_of(service: str) -> str:
        command = SERVICES[service]["command"]
        return command[command.index("--port") + 1]

    assert f"127.0.0.1:{port_of('api')}/readyz" in " ".join(healthcheck("api"))
    assert f"127.0.0.1:{port_of('flower')}/healthcheck" in " ".join(healthcheck("flower"))
    assert "celery@$HOSTNAME" in healthcheck("worker")[-1]
    assert "--enable-remote-control" in SERVICES["beat"]["command"]
    assert "celerybeat@$HOSTNAME" in healthcheck("beat")[-1]
    assert "pg_isready" in healthcheck("postgres")[-1]
    assert "redis-cli ping" in healthcheck("redis")[-1]
    assert healthcheck("rabbitmq") == ["rabbitmq-diagnostics", "-q", "ping"]
    assert "127.0.0.1:8080/healthz" in " ".join(healthcheck("proxy"))
    for name in ("emails-worker", "maintenance-worker"):
        assert "celery@$HOSTNAME" in healthcheck(name)[-1]
    assert "/readyz" in " ".join(healthcheck("api-replica"))


# --- the `scale` profile ----------------------------------------------------------------------


def test_the_scale_profile_holds_its_services_and_nothing_else():
    for name, service in SERVICES.items():
        expected = ["scale"] if name in SCALE else None
        assert service.get("profiles") == expected, name


@pytest.mark.parametrize("scale", [False, True], ids=["default", "scale"])
def test_every_dependency_is_started_by_the_same_profiles(scale):
    # `docker compose config` refuses a service that depends on one its profiles leave out.
    started = {n for n, s in SERVICES.items() if not s.get("profiles") or scale}
    for name in started:
        for dependency in SERVICES[name].get("depends_on", {}):
            assert dependency in started, f"{name} -> {dependency}"


def test_the_proxy_balances_over_every_api_replica():
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    upstream = re.search(r"dynamic a \{\s*name (\S+)\s*port (\d+)", caddyfile)
    assert upstream is not None
    name, port = upstream.groups()
    for api in ("api", "api-replica"):
        assert name in SERVICES[api]["networks"]["default"]["aliases"], api
        command = SERVICES[api]["command"]
        assert command[command.index("--port") + 1] == port, api
    mount = "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro"
    assert SERVICES["proxy"]["volumes"] == [mount]


def test_with_the_scale_profile_every_queue_has_workers_of_its_own():
    from tasks.celery_app import ALL_QUEUES

    def queues(service: str) -> str:
        command = SERVICES[service]["command"]
        return command[command.index("-Q") + 1]

    own = {queues(name): name for name in ("worker", "emails-worker", "maintenance-worker")}
    assert set(own) == set(ALL_QUEUES)


def test_the_rabbitmq_env_example_fails_closed_and_matches_the_broker_url():
    rabbitmq, _ = read_env_example(ROOT / "deploy" / "rabbitmq.env.example")
    assert rabbitmq["RABBITMQ_DEFAULT_PASS"] == ""
    assert env_files(SERVICES["rabbitmq"]) == ["deploy/rabbitmq.env"]
    example = (ROOT / f"{ENV_FILE}.example").read_text()
    user, vhost = rabbitmq["RABBITMQ_DEFAULT_USER"], rabbitmq["RABBITMQ_DEFAULT_VHOST"]
    assert f"BROKER_URL=amqp://{user}:" in example
    assert f"@rabbitmq:5672/{vhost}" in example


def test_beats_schedule_lives_on_a_volume_in_the_images_working_directory():
    workdir = next(a for k, a in dockerfile_stages()[-1] if k == "WORKDIR")
    # `billing beat` writes var/celerybeat-schedule relative to its working directory.
    assert SERVICES["beat"]["volumes"] == [f"beat-schedule:{workdir}/var"]


# --- the commands exist -----------------------------------------------------------------------


def resolve(argv: list[str]) -> tuple[click.Command, list[str], list[str]]:
    from cli.main import main

    assert argv[0] == "billing"
    command: click.Command = main
    path, args = ["billing"], argv[1:]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        subcommand = command.commands.get(args[0])
        assert subcommand is not None, f"`{' '.join([*path, args[0]])}` is not a command"
        command, path, args = subcommand, [*path, args[0]], args[1:]
    return command, path, args


def celery_options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("origin", sorted(billing_commands()))
def test_every_billing_command_line_exists_with_its_options(origin):
    from celery.bin.beat import beat
    from celery.bin.worker import worker

    argv = billing_commands()[origin]
    command, path, args = resolve(argv)
    assert not isinstance(command, click.Group), f"{argv} names a group, not a command"

    context = command.make_context(" ".join(path), list(args))  # unknown options raise here

    # `billing worker` and `billing beat` hand the rest to Celery's own commands.
    passed_on = {"billing worker": worker, "billing beat": beat}
    if context.args:
        assert " ".join(path) in passed_on, f"{argv}: {context.args} are not options"
        known = celery_options(passed_on[" ".join(path)])
        for arg in context.args:
            if arg.startswith("-"):
                assert arg.partition("=")[0] in known, f"celery does not know {arg}"


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_the_celery_healthchecks_use_options_celery_has(service):
    from celery.bin.celery import celery
    from celery.bin.control import inspect

    argv = shlex.split(healthcheck(service)[-1])
    assert argv[:5] == ["celery", "-A", "tasks.celery_app", "inspect", "ping"]
    assert "-A" in celery_options(celery)
    for arg in argv[5:]:
        if arg.startswith("-"):
            assert arg in celery_options(inspect), arg


# --- the image --------------------------------------------------------------------------------


def test_the_image_installs_the_project_without_extras_and_runs_as_a_non_root_user():
    stages = dockerfile_stages()
    final = stages[-1]
    assert final[0] == ("FROM", "python:3.11-slim")
    runs = [arguments for stage in stages for keyword, arguments in stage if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert any(re.search(r"pip install (\S+ )*\.($|\s)", run) for run in installs), installs
    assert not any("[" in run for run in installs), "the image takes no extras"
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1].partition(":")[0] not in ("root", "0")


def test_the_image_bakes_in_no_settings_and_copies_only_the_sources():
    stages = dockerfile_stages()
    for keyword, arguments in (i for stage in stages for i in stage):
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Z_][A-Z0-9_]*)=", arguments) or [arguments.split()[0]]
            assert not set(names) & SETTINGS_VARIABLES, f"{keyword} {arguments}"

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        source
        for stage in stages
        for keyword, arguments in stage
        if keyword == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    # The runtime lock: the image installs exactly what `make lock` resolved.
    expected = packages | {"pyproject.toml", pyproject["project"]["readme"]}
    assert copied == expected | {"requirements-runtime.lock"}

    # .dockerignore is an allow-list admitting exactly what the Dockerfile copies.
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert {p[1:] for p in patterns if p.startswith("!")} == copied


# --- the env files ----------------------------------------------------------------------------


def test_the_env_example_names_real_settings_only():
    assigned, commented = read_env_example(ROOT / f"{ENV_FILE}.example")

    unknown = (set(assigned) | commented) - SETTINGS_VARIABLES
    assert not unknown, f"not Settings fields (typos?): {sorted(unknown)}"


def test_the_env_example_lists_every_setting():
    assigned, commented = read_env_example(ROOT / f"{ENV_FILE}.example")

    missing = SETTINGS_VARIABLES - set(assigned) - commented
    assert not missing, f"add to {ENV_FILE}.example (set or commented): {sorted(missing)}"


def test_the_env_example_points_at_the_compose_services():
    platform, _ = read_env_example(ROOT / f"{ENV_FILE}.example")
    database, _ = read_env_example(ROOT / f"{POSTGRES_ENV_FILE}.example")

    url = urlsplit(platform["DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == database["POSTGRES_USER"]
    assert url.path == f"/{database['POSTGRES_DB']}"
    assert "POSTGRES_PASSWORD" in database
    redis = urlsplit(platform["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    smtp = urlsplit(platform["SMTP_URL"])
    assert (smtp.hostname, smtp.port) == ("mailpit", 1025)
    assert "FLOWER_BASIC_AUTH" in platform
    assert platform["APP_ENV"] == "production"


def test_the_env_example_fails_closed_until_the_operator_fills_it_in():
    platform, _ = read_env_example(ROOT / f"{ENV_FILE}.example")
    for name in OPERATOR_VALUES:
        assert platform[name] == "", f"{name} must be left for the operator"
    filled_in = {**platform, **OPERATOR_VALUES}

    def settings(values: dict[str, str]) -> Settings:
        return load_settings(**{name.lower(): value for name, value in values.items()})

    load_catalogue(settings(filled_in))
    for name in ("STRIPE_SECRET_KEY_LIVE", "STRIPE_WEBHOOK_SECRET"):
        with pytest.raises(ConfigurationError, match=name):
            settings({**filled_in, name: ""})
    # Flower listens on 0.0.0.0 in its container: it needs the credentials, and gets them.
    flower_settings = settings(filled_in)
    credentials = parse_basic_auth(flower_settings.flower_basic_auth)
    check_exposure(flower_settings, address="0.0.0.0", credentials=credentials)
    with pytest.raises(ConfigurationError, match="FLOWER_BASIC_AUTH"):
        check_exposure(flower_settings, address="0.0.0.0", credentials=parse_basic_auth(""))
