"""Types shared over the wire between roles (JSON-compatible attrs classes).

``agola.types.runservice`` holds the runservice's runs, run configs, executors and executor
tasks; other roles add their own module here. Every wire type has ``to_json()`` / ``from_json()``
(see ``agola.types._json``).
"""

from __future__ import annotations

from agola.types._json import JSONType, format_time, jfield, parse_time

__all__ = ["JSONType", "format_time", "jfield", "parse_time"]
