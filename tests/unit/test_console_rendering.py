"""The console's pure parts: the deadline countdown, the SVG chart, where a login may send
the browser, and the password rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.console.auth_pages import _safe_next
from api.console.charts import events_chart, minute_bars
from api.console.rendering import _countdown, _pretty_json
from api.console.security import password_problem

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_the_countdown_reads_days_then_hours_then_overdue():
    assert _countdown(NOW + timedelta(days=3, hours=4, minutes=5), NOW) == "3d 4h left"
    assert _countdown(NOW + timedelta(hours=5, minutes=12), NOW) == "5h 12m left"
    assert _countdown(NOW - timedelta(hours=2, minutes=3), NOW) == "overdue by 2h 3m"
    assert _countdown(None, NOW) == "no deadline"


def test_minute_bars_cover_every_minute_of_the_window():
    minute = NOW.replace(second=0) - timedelta(minutes=2)
    bars = minute_bars([(minute, "processed", 3), (minute, "failed", 1)], end=NOW, minutes=5)

    assert [bar.minute for bar in bars] == [NOW - timedelta(minutes=m) for m in (4, 3, 2, 1, 0)]
    assert [bar.total for bar in bars] == [0, 0, 4, 0, 0]


def test_the_chart_escapes_what_it_is_given_and_describes_itself():
    bars = minute_bars([(NOW, "<script>x</script>", 2)], end=NOW, minutes=3)

    svg = str(events_chart(bars))

    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'role="img"' in svg and "2 in all" in svg


def test_a_login_only_sends_the_browser_within_the_console():
    assert _safe_next("/console/events?status=failed") == "/console/events?status=failed"
    for target in ("//evil.example/console/", "https://evil.example/", "/api/admin", "/console\\x"):
        assert _safe_next(target) == "/console/"


def test_passwords_must_match_and_be_long_enough():
    assert password_problem("a" * 12, "a" * 12) is None
    assert password_problem("a" * 12, "b" * 12) == "The two passwords differ."
    assert "12" in (password_problem("short", "short") or "")


def test_the_payload_is_shown_redacted():
    shown = _pretty_json(
        {"customer_email": "jane.doe@example.com", "client_secret": "pi_x_secret_y"}
    )

    assert "jane.doe@example.com" not in shown and "j***@example.com" in shown
    assert "pi_x_secret_y" not in shown
