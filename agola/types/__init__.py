"""Types shared over the wire between roles (JSON-compatible attrs classes).

``agola.types.runservice`` holds the runservice's runs, run configs, executors and executor
tasks, ``agola.types.configstore`` the configstore's objects, ``agola.types.refs`` the git ref
kinds; other roles add their own module here. Every wire type has ``to_json()`` / ``from_json()``
from the one codec, ``agola.types._json``.
"""

from __future__ import annotations

from agola.types._json import (
    ZERO_TIME,
    GoTime,
    JSONType,
    format_time,
    jembedded,
    jfield,
    parse_time,
)

__all__ = ["ZERO_TIME", "GoTime", "JSONType", "format_time", "jembedded", "jfield", "parse_time"]
