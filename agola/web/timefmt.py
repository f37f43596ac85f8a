"""Times as people read them on a page: "1m 05s" long, "3 min ago". The gateway's run responses
carry RFC 3339 strings (or None); the helpers take those or datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["ago", "elapsed", "human_seconds", "parse_time"]


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_seconds(seconds: float) -> str:
    if seconds < 0:
        seconds = 0
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def elapsed(start: Any, end: Any, now: Any = None) -> str:
    """How long from ``start`` to ``end`` (to ``now`` while running); "" when not started."""
    begin = parse_time(start)
    if begin is None:
        return ""
    finish = parse_time(end) or parse_time(now) or datetime.now(UTC)
    return human_seconds((finish - begin).total_seconds())


def ago(value: Any, now: Any = None) -> str:
    when = parse_time(value)
    if when is None:
        return ""
    seconds = ((parse_time(now) or datetime.now(UTC)) - when).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return when.strftime("%Y-%m-%d %H:%M UTC")
