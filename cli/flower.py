"""Placeholder: being written in this session."""

from __future__ import annotations

import click


@click.command()
def flower() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
