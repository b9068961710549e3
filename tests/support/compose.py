"""docker-compose.yml read as data, and its healthchecks as local command lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def healthcheck(service: str, *, replace: dict[str, str] | None = None) -> list[str]:
    """The service's healthcheck as a local command line (Compose's `$$` is a literal `$`)."""
    kind, *test = SERVICES[service]["healthcheck"]["test"]
    if kind == "CMD-SHELL":
        test = ["sh", "-c", test[0].replace("$$", "$")]
    for old, new in (replace or {}).items():
        test = [part.replace(old, new) for part in test]
    return test


def run_healthcheck(argv: list[str], **env: str) -> subprocess.Popen[str]:
    """Started, not awaited: the callers run their checks side by side."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen(
        argv,
        env={**os.environ, "PATH": path, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
