"""The layers import only downwards: `billing/` (the rules) knows neither the web framework
nor the task queue nor the packages built on them, and `api/` reaches `tasks/` only to
publish tasks by name through `tasks.celery_app`'s publisher app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_BILLING = ("fastapi", "starlette", "celery", "kombu", "api", "tasks")
API_MAY_IMPORT_FROM_TASKS = {"tasks.celery_app"}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def imported(source: str, *, package: str) -> set[str]:
    """Every module an `import` or `from ... import` names, wherever it stands (top level or
    inside a function), relative imports resolved against `package`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = ".".join(part for part in (parent, base) if part)
            names.add(base)
    return names


def imports_of(path: Path) -> set[str]:
    return imported(path.read_text(), package=package_of(path))


def under(name: str, top: str) -> bool:
    return name == top or name.startswith(f"{top}.")


def forbidden_in_billing(names: set[str]) -> set[str]:
    return {n for n in names if any(under(n, top) for top in FORBIDDEN_IN_BILLING)}


def forbidden_in_api(names: set[str]) -> set[str]:
    return {n for n in names if under(n, "tasks")} - API_MAY_IMPORT_FROM_TASKS


@pytest.mark.parametrize("path", modules("billing"), ids=lambda p: p.name)
def test_billing_imports_no_framework_no_queue_no_adapter(path):
    bad = forbidden_in_billing(imports_of(path))
    assert not bad, f"billing/{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("api"), ids=lambda p: str(p.relative_to(ROOT)))
def test_api_imports_from_tasks_only_the_publisher(path):
    bad = forbidden_in_api(imports_of(path))
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_billing_reads_no_process_globals():
    """The rules get the settings, the catalogue and the Stripe client from their context,
    never from the process-wide getters."""
    for path in modules("billing"):
        calls = {
            node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
        }
        used = calls & {"get_settings", "get_catalogue", "stripe_client"}
        assert not used, f"billing/{path.name} calls {sorted(used)}"


def test_the_checks_catch_what_they_must_refuse():
    source = (
        "import celery\n"
        "from starlette.requests import Request\n"
        "def f():\n"
        "    from tasks.events import outbox\n"
        "from ...api import deps\n"
        "from .context import BillingContext\n"
    )
    names = imported(source, package="billing.sub")
    assert forbidden_in_billing(names) == {"celery", "starlette.requests", "tasks.events", "api"}
    assert forbidden_in_api({"tasks.celery_app", "tasks.events.outbox"}) == {"tasks.events.outbox"}
