"""Times as people read them on a page: "1m 05s" long, "3 min ago". The gateway's run responses
carry RFC 3339 strings (or None); the helpers take those or datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agola.util.timefmt import format_seconds, parse_time

__all__ = ["ago", "elapsed", "human_seconds", "parse_time"]


def human_seconds(seconds: float) -> str:
    return format_seconds(seconds)


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
