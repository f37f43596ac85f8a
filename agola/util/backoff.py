"""Exponential backoff with jitter, for every retry loop (loop runners, watch reconnects)."""

from __future__ import annotations

import random

import attrs


@attrs.define
class Backoff:
    """Delays growing from ``initial`` by ``factor`` up to ``maximum``, each jittered by
    ``±jitter`` (a fraction) so that instances failing together do not retry together."""

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2
    _current: float = attrs.field(init=False, default=0.0)

    def next(self) -> float:
        """The delay before the next attempt (each call grows the following one)."""
        base = min(self.maximum, self._current or self.initial)
        self._current = min(self.maximum, base * self.factor)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """After a success: the next failure starts again from ``initial``."""
        self._current = 0.0
