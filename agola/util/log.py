"""Structured logging: one line per event, ``key=value`` pairs, quiet by default.

Usage::

    log = get_logger(__name__)
    log.info("task started", task_id=tid, executor=eid)

``setup(debug=True)`` makes every agola logger loud; otherwise only INFO and above from agola and
WARNING from libraries are printed. Values that look like secrets must never be passed here.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO


def _fmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_fmt_value(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if fields:
            parts.extend(f"{k}={_fmt_value(v)}" for k, v in fields.items())
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"exc={_fmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class StructuredLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose methods take keyword fields: ``log.info("msg", key=value)``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        reserved = {"exc_info", "stack_info", "stacklevel", "extra"}
        fields = {k: v for k, v in kwargs.items() if k not in reserved}
        rest = {k: v for k, v in kwargs.items() if k in reserved}
        extra = dict(rest.pop("extra", None) or {})
        extra["fields"] = fields
        rest["extra"] = extra
        return msg, rest


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name), {})


class _RootHandler(logging.StreamHandler[TextIO]):
    """The handler ``setup`` installs (and replaces on a second call)."""


def setup(debug: bool = False, stream: TextIO | None = None) -> None:
    """Configure the root handler once per process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _RootHandler):
            root.removeHandler(handler)
    handler = _RootHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("agola").setLevel(logging.DEBUG if debug else logging.INFO)
    # aiohttp's own access log is replaced by our request logging middleware.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
