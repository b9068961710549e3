"""Where a benchmark's CPU went: per process tree, per PostgreSQL database, the whole
machine (all from /proc: the servers run on this machine), and py-spy profiles."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg


def database_cpu_seconds(database_url: str) -> float:
    """User + system CPU of the PostgreSQL backends now connected to this database (the
    server runs on this machine); a backend that ended since is no longer counted."""
    tick = os.sysconf("SC_CLK_TCK")
    with psycopg.connect(database_url) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    total = 0.0
    for (pid,) in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and its live descendants (a prefork pool's children)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            times[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(pid, 0.0) for pid in tree)


@contextlib.contextmanager
def profiler(pid: int, output: Path) -> Iterator[None]:
    """py-spy on a process and its children at 50 Hz while the block runs (.txt: raw
    collapsed stacks, else an SVG flame graph)."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    argv = [py_spy, "record", "-p", str(pid), "--subprocesses", "-r", "50"]
    argv += ["-f", "raw" if output.suffix == ".txt" else "flamegraph", "-o", str(output)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
