"""Fuzzing profiles and the run summary.

`HYPOTHESIS_PROFILE` picks the profile: `default` (bounded, part of `make test`) or `long`
(`make fuzz`). Both are derandomized, without an example database, so a CI failure is the
same failure on a laptop. Each fuzz test takes its share of examples from `budget()`, and
ends with `record_summary()`: a line on stdout and a JSON line in `var/fuzz-summary.json`.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_FILE = ROOT / "var" / "fuzz-summary.json"

# The examples each fuzz test runs, per profile. The bounded numbers keep tests/fuzz under
# about a minute; the long ones are for `make fuzz` (tens of minutes).
BUDGETS: dict[str, dict[str, int]] = {
    # settlement: payment stories, each delivered in its natural order and this many shuffles
    # (a story is up to ~60 events through the real handlers: 15 keep it near 40 s)
    "default": {"webhook": 200, "api_per_operation": 20, "settlement": 15, "shuffles": 3},
    "long": {"webhook": 5000, "api_per_operation": 400, "settlement": 400, "shuffles": 8},
}

_COMMON: dict[str, Any] = {
    "deadline": None,  # one request can take a while (a 1 MiB body, a cold connection)
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
}
settings.register_profile("default", max_examples=BUDGETS["default"]["webhook"], **_COMMON)
settings.register_profile("long", max_examples=BUDGETS["long"]["webhook"], **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
if PROFILE not in BUDGETS:
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: the fuzz profiles are {sorted(BUDGETS)}")
settings.load_profile(PROFILE)


def timeout_seconds() -> int:
    """The pytest-timeout of one fuzz test under the active profile."""
    return {"default": 300, "long": 4 * 3600}[PROFILE]


def budget(name: str) -> int:
    """How many examples the fuzz test `name` runs under the active profile."""
    return BUDGETS[PROFILE][name]


@dataclass
class FuzzTally:
    """What one fuzz test sent and what came back."""

    test: str
    started: float = field(default_factory=time.monotonic)
    examples: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, kind: str, status: int | str) -> None:
        """One request of that kind, answered with `status` (or "exception")."""
        self.examples += 1
        self.kinds[kind] += 1
        self.statuses[str(status)] += 1


class Findings:
    """What a fuzz test saw go wrong: how often each (subject, what) happened, and the first
    input of each, so that one run reports every distinct failure instead of the first."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.first: dict[tuple[str, str], str] = {}

    def add(self, subject: str, what: str, detail: Any) -> None:
        key = (subject, what)
        self.counts[key] += 1
        if key not in self.first:
            text = detail if isinstance(detail, str) else json.dumps(detail, indent=2, default=str)
            self.first[key] = text[:6000]

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> dict[str, int]:
        return {f"{subject}: {what}": n for (subject, what), n in self.counts.items()}

    def report(self) -> str:
        return "\n".join(
            f"--- {subject}: {what} ({self.counts[(subject, what)]} times); the first:\n{text}"
            for (subject, what), text in self.first.items()
        )


def last_frames(limit: int = 3000) -> str:
    """The end of the current exception's traceback: where the app raised, and what."""
    text = traceback.format_exc()
    return text if len(text) <= limit else "...\n" + text[-limit:]


def record_summary(tally: FuzzTally) -> dict[str, Any]:
    """Print the tally and append it, as one JSON line, to var/fuzz-summary.json."""
    summary = {
        "test": tally.test,
        "profile": PROFILE,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - tally.started, 2),
        "examples": tally.examples,
        "statuses": dict(sorted(tally.statuses.items())),
        "kinds": dict(sorted(tally.kinds.items())),
        **tally.extra,
    }
    print(f"\nfuzz summary: {json.dumps(summary)}")
    SUMMARY_FILE.parent.mkdir(parents=True, exist_ok=True)
    with SUMMARY_FILE.open("a") as out:
        out.write(json.dumps(summary) + "\n")
    return summary
