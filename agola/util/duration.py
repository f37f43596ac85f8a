"""Go duration strings (``time.ParseDuration``): "15s", "1h30m", "300ms", "-1.5h".

The one duration parser of agola: the pipeline file's ``task_timeout_interval``, the wire codec's
``timedelta`` values (``agola.types._json``) and the server config file (``agola.config``, which
also accepts ``d`` for days, as documented in ``docs/config.md``) all read durations here.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DurationError", "format_duration", "parse_duration", "to_timedelta"]

NANOSECONDS_PER_SECOND = 1_000_000_000
_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": NANOSECONDS_PER_SECOND,
    "m": 60 * NANOSECONDS_PER_SECOND,
    "h": 3600 * NANOSECONDS_PER_SECOND,
}
_DAY = 24 * 3600 * NANOSECONDS_PER_SECOND
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
# Longest units first so "ms" is never read as "m" followed by garbage.
_PART = re.compile(_NUMBER + r"(ns|us|µs|μs|ms|s|m|h)")
_PART_WITH_DAYS = re.compile(_NUMBER + r"(ns|us|µs|μs|ms|s|m|h|d)")
_MAX = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds


class DurationError(ValueError):
    """Not a Go duration string."""


def parse_duration(text: str, *, days: bool = False) -> int:
    """The nanoseconds of a Go duration string; a sign is allowed and a bare "0" means zero.

    ``days=True`` also accepts the ``d`` unit (24h), which Go does not: only for our own config.
    """
    s = text.strip()
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError("empty duration")
    part = _PART_WITH_DAYS if days else _PART
    total = 0.0
    pos = 0
    while pos < len(s):
        m = part.match(s, pos)
        if m is None:
            units = "ns, us, ms, s, m, h" + (", d" if days else "")
            raise DurationError(f'not a duration (e.g. "90s", "1h30m"; units: {units})')
        unit = m.group(2)
        total += float(m.group(1)) * (_DAY if unit == "d" else _UNITS[unit])
        pos = m.end()
    if total > _MAX:
        raise DurationError("duration too large")
    return sign * round(total)


def to_timedelta(nanoseconds: int) -> timedelta:
    """A ``timedelta`` (microsecond resolution) of a nanosecond count, truncated like Go's."""
    return timedelta(microseconds=nanoseconds // 1000)


def to_nanoseconds(value: timedelta) -> int:
    """The nanosecond count of a ``timedelta`` (Go's ``time.Duration``), exact."""
    return value // timedelta(microseconds=1) * 1000


def format_duration(ns: int) -> str:
    """A short human form of a duration in nanoseconds (for ``agola pipeline show``)."""
    if ns % NANOSECONDS_PER_SECOND:
        return f"{ns / NANOSECONDS_PER_SECOND:g}s"
    seconds = ns // NANOSECONDS_PER_SECOND
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
