"""The two ways `billing up` ends early, shared by its steps."""

from __future__ import annotations


class UpError(Exception):
    """`billing up` cannot go on; the message is one sentence."""


class StoppedDuringStartup(Exception):
    """Ctrl-C (or SIGTERM) arrived before the platform was ready."""
