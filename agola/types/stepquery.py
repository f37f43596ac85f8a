"""The step query of log and archive requests: ``?setup`` or ``?step=N``, and ``&follow``.

One parser for every server that takes it (the executor's ``/executor/logs`` and
``/executor/archives``, the runservice's ``/logs`` and ``/executor/...``, the gateway's ``/logs``)
and one encoder for every client that sends it, so they cannot drift apart.

A flag (``setup``, ``follow``) is set by its presence with an empty value, as the reference's
clients send it (``?setup&follow``); ``1``/``true``/``yes`` also set it, ``0``/``false``/``no``
leave it unset, anything else is a 400. ``step`` is a decimal integer >= 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from agola.errors import BadRequest
from agola.util.http import query_flag


@attrs.frozen
class StepQuery:
    """Which log of a task: the setup step's (``setup``) or step ``step``'s; ``follow`` streams a
    running step's log until it ends."""

    setup: bool = False
    step: int | None = None
    follow: bool = False

    @classmethod
    def of(cls, step: int | None, *, follow: bool = False) -> StepQuery:
        """Step ``step``'s log, or the setup step's for None."""
        return cls(setup=step is None, step=step, follow=follow)

    def params(self) -> dict[str, str]:
        """The query parameters, as the servers parse them."""
        params: dict[str, str] = {}
        if self.setup:
            params["setup"] = ""
        if self.step is not None:
            params["step"] = str(self.step)
        if self.follow:
            params["follow"] = ""
        return params


def _step(query: Mapping[str, str]) -> int | None:
    raw = query.get("step")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        if raw.lstrip("-").isascii() and raw.lstrip("-").isdigit():
            raise BadRequest("step must be >= 0")
        raise BadRequest(f"step {raw!r} is not an integer")
    return int(raw)


def parse_log_query(query: Mapping[str, str]) -> StepQuery:
    """A log request: exactly one of ``setup`` and ``step``, and maybe ``follow``."""
    setup, step, follow = query_flag(query, "setup"), _step(query), query_flag(query, "follow")
    if setup == (step is not None):
        raise BadRequest("exactly one of setup or step must be given")
    return StepQuery(setup=setup, step=step, follow=follow)


def parse_archive_step(query: Mapping[str, str]) -> int:
    """A workspace archive request: its ``step`` (required; archives have no setup step)."""
    if query_flag(query, "setup"):
        raise BadRequest("an archive belongs to a step, not to the setup")
    step = _step(query)
    if step is None:
        raise BadRequest("step is required")
    return step


__all__ = ["StepQuery", "parse_archive_step", "parse_log_query"]
