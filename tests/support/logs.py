"""What a component logged: the outside view of its health (failed passes, resyncs, ...)."""

from __future__ import annotations

import logging
from typing import Any

import pytest


def logged(caplog: pytest.LogCaptureFixture, message: str, **fields: Any) -> list[logging.LogRecord]:
    """The records of ``message`` whose structured fields include ``fields``."""
    out = []
    for record in caplog.records:
        got = getattr(record, "fields", {}) or {}
        if record.getMessage() == message and all(got.get(k) == v for k, v in fields.items()):
            out.append(record)
    return out
