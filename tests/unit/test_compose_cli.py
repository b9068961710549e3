"""The Compose file as Compose itself reads it: `config` needs no engine, only the CLI (the
compose plugin, or Debian's `docker-compose`, which `.ci/run` installs when neither is there).
The static checks of what the file says are in test_compose.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.compose import ROOT


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, "the Compose CLI is missing: apt-get install docker-compose (or the plugin)"
    return [legacy]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The Compose file beside its env files, filled from the examples as an operator would."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / "Dockerfile", tmp_path)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    for example in (tmp_path / "deploy").glob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return tmp_path


@pytest.mark.parametrize("profiles", [[], ["--profile", "scale"]], ids=["default", "scale"])
def test_compose_accepts_the_file(checkout, profiles):
    done = subprocess.run(
        [*compose_command(), *profiles, "config"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    services = set(yaml.safe_load(done.stdout)["services"])
    scale = {"rabbitmq", "api-replica", "proxy", "emails-worker", "maintenance-worker"}
    assert {"api", "worker", "email-worker", "beat"} <= services
    if profiles:  # (Compose v1 lists every service whatever the profile; v2 only those)
        assert scale <= services
