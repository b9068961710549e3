"""`billing up`: the whole platform on one machine, in one terminal."""

from __future__ import annotations

import click


@click.command()
def up() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
