"""Render every template with sample data to files a designer can open in a browser."""

from __future__ import annotations

from html import escape
from pathlib import Path

from core.settings import Settings
from emails.rendering import EmailRenderer
from emails.samples import SAMPLES


def write_previews(settings: Settings, out_dir: Path) -> Path:
    """Write `<name>.html` and `<name>.txt` for each email, and an index; the index's path."""
    renderer = EmailRenderer(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    links = []
    for name in renderer.template_names():
        email = renderer.render(name, SAMPLES[name])
        (out_dir / f"{name}.html").write_text(email.html)
        (out_dir / f"{name}.txt").write_text(f"Subject: {email.subject}\n\n{email.text}")
        links.append(
            f'<li><a href="{name}.html">{escape(name)}</a> (<a href="{name}.txt">text</a>): '
            f"{escape(email.subject)}</li>"
        )
    index = out_dir / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>Email previews</title>"
        f"<h1>Email previews</h1><ul>{''.join(links)}</ul>"
    )
    return index
