"""Server-rendered SVG charts: a stacked bar per minute of events by outcome. Pure functions
of the counts; the markup is built with Markup-escaped text, so a status name cannot inject."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

# Colours that stay apart for the common colour-vision deficiencies (Okabe-Ito).
STATUS_COLOURS = {
    "processed": "#009E73",
    "ignored": "#999999",
    "queued": "#56B4E9",
    "received": "#0072B2",
    "processing": "#E69F00",
    "failed": "#D55E00",
}
STATUS_ORDER = tuple(STATUS_COLOURS)


@dataclass(frozen=True, slots=True)
class Bar:
    minute: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def minute_bars(
    counts: Sequence[tuple[datetime, str, int]], *, end: datetime, minutes: int
) -> list[Bar]:
    """One bar per minute of the window ending at `end` (empty minutes included)."""
    last = end.replace(second=0, microsecond=0)
    bars = {
        last - timedelta(minutes=i): Bar(last - timedelta(minutes=i), {}) for i in range(minutes)
    }
    for minute, status, count in counts:
        bar = bars.get(minute)
        if bar is not None:
            bar.counts[status] = bar.counts.get(status, 0) + count
    return [bars[m] for m in sorted(bars)]


def events_chart(bars: Sequence[Bar], *, width: int = 720, height: int = 180) -> Markup:
    """A stacked bar chart of events per minute by outcome, with its own text alternative."""
    top = max((bar.total for bar in bars), default=0) or 1
    plot_height = height - 24
    slot = width / max(len(bars), 1)
    parts: list[str] = []
    for index, bar in enumerate(bars):
        y = float(plot_height)
        for status in (*STATUS_ORDER, *sorted(set(bar.counts) - set(STATUS_ORDER))):
            count = bar.counts.get(status, 0)
            if not count:
                continue
            h = count / top * (plot_height - 4)
            y -= h
            colour = STATUS_COLOURS.get(status, "#CC79A7")
            label = escape(f"{bar.minute:%H:%M} {status}: {count}")
            parts.append(
                f'<rect x="{index * slot + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{label}</title></rect>'
            )
    if bars:
        first, last = bars[0].minute, bars[-1].minute
        parts.append(
            f'<text x="0" y="{height - 6}" class="axis">{first:%H:%M}</text>'
            f'<text x="{width}" y="{height - 6}" class="axis" text-anchor="end">{last:%H:%M}</text>'
        )
    parts.append(f'<text x="{width}" y="12" class="axis" text-anchor="end">max {top}/min</text>')
    total = sum(bar.total for bar in bars)
    summary = escape(f"Events per minute over the last {len(bars)} minutes: {total} in all.")
    return Markup(
        f'<svg role="img" aria-label="{summary}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="none" class="chart">'
        f'<line x1="0" y1="{plot_height}" x2="{width}" y2="{plot_height}" class="baseline"/>'
        + "".join(parts)
        + "</svg>"
    )
