"""Times as people read them, for the CLI and the web UI alike: API timestamps (RFC 3339 strings,
Go's zero time for "never") parsed, and lengths of time written ``1m05s`` (compact, the CLI's
columns) or ``1m 05s`` (the web pages)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["format_seconds", "parse_time"]


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware datetime of an API timestamp (or a datetime); None for none or Go's zero time."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_seconds(seconds: float, *, compact: bool = False) -> str:
    """``42s``, ``1m05s``, ``2h03m`` (compact) or ``4.2s``, ``1m 05s``, ``2h 03m``: the
    non-compact form shows tenths under 10 seconds."""
    seconds = max(0.0, seconds)
    if not compact and seconds < 10:
        return f"{seconds:.1f}s"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    sep = "" if compact else " "
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{sep}{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{sep}{minutes:02d}m"
