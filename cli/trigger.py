"""Placeholder: being written in this session."""

from __future__ import annotations

import click


@click.command()
def trigger() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
