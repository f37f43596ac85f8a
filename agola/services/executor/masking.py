"""Secret values replaced by ``***`` in step logs, as the output streams through.

A value may arrive split across two writes of the pod's output, so the masker keeps back the last
``longest value - 1`` bytes of what it was given until it knows they do not start a value (or the
log ends). Multi-line values are masked whole and line by line (a step may print one line of a
key). Values shorter than ``MIN_MASKED_LENGTH`` characters are not masked: replacing every ``1``
or ``ab`` would make logs unreadable and says nothing a reader could not guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "MIN_MASKED_LENGTH", "StreamMasker"]

MASK = b"***"
MIN_MASKED_LENGTH = 4


class StreamMasker:
    """Masks ``values`` in a byte stream given in chunks: ``feed(chunk)`` then ``flush()``."""

    def __init__(self, values: Iterable[str]) -> None:
        needles: set[bytes] = set()
        for value in values:
            for candidate in (value, *value.splitlines()):
                candidate = candidate.strip("\r")
                if len(candidate) >= MIN_MASKED_LENGTH:
                    needles.add(candidate.encode())
        # Longest first: where two values start at the same place, the longer one is masked whole.
        ordered = sorted(needles, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(n) for n in ordered)) if ordered else None
        self._needles = tuple(ordered)
        self._keep = max((len(n) for n in ordered), default=1) - 1
        self._pending = b""

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def feed(self, chunk: bytes) -> bytes:
        """The masked bytes that are safe to write now (possibly fewer than given)."""
        if self._pattern is None:
            return chunk
        data = self._pending + chunk
        # A value starting before `boundary` lies wholly in `data`; one starting after may go on
        # in the next chunk, so those bytes wait.
        boundary = len(data) - self._keep
        if not any(n in data for n in self._needles):
            # The usual case, no secret in sight: a substring search per value is several times
            # faster than the alternation of all of them.
            cut = max(boundary, 0)
            self._pending = data[cut:]
            return data[:cut]
        out: list[bytes] = []
        emitted = 0
        for m in self._pattern.finditer(data):
            if m.start() >= boundary:
                break
            out.append(data[emitted : m.start()])
            out.append(MASK)
            emitted = m.end()
        cut = max(boundary, emitted)
        out.append(data[emitted:cut])
        self._pending = data[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest, masked: the stream ended."""
        if self._pattern is None:
            rest, self._pending = self._pending, b""
            return rest
        rest, self._pending = self._pending, b""
        return self._pattern.sub(MASK, rest)
