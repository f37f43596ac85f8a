"""Go ``time.ParseDuration`` for ``task_timeout_interval`` ("15s", "1h30m", "300ms")."""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX = 2**63 - 1


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Nanoseconds in a Go duration string; a sign is allowed, a bare "0" means zero."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError("empty duration")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise DurationError("not a duration (valid units: ns, us, ms, s, m, h)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if total > _MAX:
        raise DurationError("duration too large")
    return sign * int(round(total))


def format_duration(ns: int) -> str:
    """A short human form of a duration in nanoseconds (for ``agola pipeline show``)."""
    if ns % 1_000_000_000:
        return f"{ns / 1_000_000_000:g}s"
    seconds = ns // 1_000_000_000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or not out:
        out += f"{secs}s"
    return out
