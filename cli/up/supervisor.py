"""Children of `billing up`: started in their own process groups, output tailed with a prefix,
stopped in order (the platform first, then the servers it needs), nothing left behind.

Each child gets its own process group so that a terminal's Ctrl-C reaches `billing up` alone,
which then stops everything in order instead of every process dying at once (a worker
finishing its task while PostgreSQL is already gone). On Linux each child also asks the
kernel for a signal should `billing up` itself die without cleaning up (PR_SET_PDEATHSIG),
so even `kill -9` leaves no orphan serving on a port. The servers get their graceful stop
(PostgreSQL SIGINT, its fast shutdown, which does not wait for connected clients as SIGTERM
would). The platform's processes get SIGKILL: their servers are going away at the same
moment, and a graceful stop then hangs (beat was seen retrying its broker connection
forever); a hard stop is what they are built to survive (late acknowledgement, the sweep).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_SECONDS = 20.0
NAME_WIDTH = 8
COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93", "92")

_libc = (
    ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if sys.platform == "linux"
    else None
)


def _signal_when_orphaned(death_signal: signal.Signals) -> Callable[[], None] | None:
    """A hook for between fork and exec that has the child sent `death_signal` when its
    parent dies; None where the kernel has no such thing (the ordinary stop still works)."""
    if _libc is None:
        return None
    prctl = _libc.prctl

    def hook() -> None:
        # Python code between fork and exec can deadlock on a lock another thread held at
        # the fork; this one takes none (no import, no allocation beyond the call itself).
        prctl(PR_SET_PDEATHSIG, int(death_signal))

    return hook


class Output:
    """One line at a time from every child, each with its name in front, and with the
    secrets it was told to hide masked whoever printed them."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()
        self._colours: dict[str, str] = {}
        self._hidden: list[str] = []

    def hide(self, secret: str) -> None:
        """Mask `secret` in every line from now on (a child's log line may show a URL)."""
        if secret:
            self._hidden.append(secret)

    def line(self, name: str, text: str) -> None:
        for secret in self._hidden:
            text = text.replace(secret, "***")
        prefix = f"{name:<{NAME_WIDTH}}|"
        if self.colour:
            code = self._colours.setdefault(name, COLOURS[len(self._colours) % len(COLOURS)])
            prefix = f"\033[{code}m{prefix}\033[0m"
        with self._lock:
            self.stream.write(f"{prefix} {text}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        self.line("up", text)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    reader: threading.Thread
    # How the child prefers to be asked to stop: PostgreSQL's fast shutdown is SIGINT.
    stop_signal: signal.Signals

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


class Supervisor:
    def __init__(self, output: Output) -> None:
        self.output = output
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        user: str | None = None,
        stdin: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        death_signal: signal.Signals = signal.SIGKILL,
    ) -> Child:
        """Start `argv`; `stdin`, when given, is written to its standard input, then closed
        (settings that must stay off a command line every local user can read)."""
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            env=env,
            user=user,
            start_new_session=True,
            preexec_fn=_signal_when_orphaned(death_signal),
        )
        if process.stdin is not None:
            # A few bytes: the pipe's buffer holds them whether or not the child reads yet.
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write((stdin or "").encode())
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        reader = threading.Thread(
            target=self._tail, args=(name, process), name=f"tail-{name}", daemon=True
        )
        reader.start()
        child = Child(name, process, reader, stop_signal)
        self.children.append(child)
        return child

    def run_to_end(self, name: str, argv: list[str], *, env: dict[str, str]) -> int:
        """A one-shot child (the migrations), its output tailed like the others'."""
        child = self.start(name, argv, env=env)
        code = child.process.wait()
        child.reader.join(timeout=5)
        self.children.remove(child)
        return code

    def _tail(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self.output.line(name, raw.decode(errors="replace").rstrip())
        process.stdout.close()

    def exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        return next((child for child in self.children if not child.alive), None)

    def stop(self, names: Callable[[Child], bool] = lambda _: True) -> None:
        """Ask the matching children to stop, all at once; kill what is left after a while."""
        group = [child for child in self.children if names(child)]
        for child in group:
            if child.alive:
                child.signal_group(child.stop_signal)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in group:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if child.alive:
                limit = f"{STOP_TIMEOUT_SECONDS:.0f} s"
                self.output.say(f"{child.name} did not stop in {limit}: killed")
                child.signal_group(signal.SIGKILL)
                child.process.wait()
            # Pool processes of a worker may outlive their parent for a moment: the group
            # is killed outright once its leader is gone, so nothing keeps running.
            child.signal_group(signal.SIGKILL)
            child.reader.join(timeout=5)
            self.children.remove(child)
