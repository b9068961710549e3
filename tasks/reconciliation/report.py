"""A run's report as a plain-text table, for `billing reconcile`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from db.reconciliation_report import Report

COLUMNS = ("kind", "subscription", "field", "local", "stripe", "fixed", "reason")
MAX_CELL = 40


def render_report(report: Report) -> list[str]:
    """The summary lines, then one table row per item."""
    title = "dry run (nothing changed)" if report.dry_run else f"run {report.run_id}"
    lines = [
        f"reconciliation {title}: {report.status}",
        f"checked {report.checked}, drifted {report.drifted}, fixed {report.fixed}",
        f"missed events: {report.missed_events or '-'}"
        + (f" ({report.missed_events_detail})" if report.missed_events_detail else ""),
    ]
    if report.error:
        lines.append(f"error: {report.error}")
    if not report.items:
        lines.append("no drift")
        return lines
    rows = [
        (
            item.kind,
            item.object_id,
            item.field,
            _cell(item.local_value),
            _cell(item.stripe_value),
            "yes" if item.fixed else "no",
            item.reason or "",
        )
        for item in report.items
    ]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, tuple("-" * width for width in widths), *rows]:
        cells = (value.ljust(width) for value, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return lines


def print_report(report: Report, *, echo: Callable[[str], Any] = print) -> None:
    for line in render_report(report):
        echo(line)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
