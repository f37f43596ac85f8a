"""What every benchmark returns: rows of one table (our figure, the baseline, the ratio, the target)."""

from __future__ import annotations

import attrs


@attrs.frozen
class BenchRow:
    id: str            # e.g. "P6"
    what: str          # what is measured, one line
    ours: float        # our figure
    baseline: float | None  # the baseline measured in the same run (None: no baseline)
    unit: str          # "s", "ops/s", "MB/s", "ms", "MB"
    target: str        # e.g. ">= 50% of baseline", "< 20 ms"
    met: bool | None   # whether the target is met (None: not judged)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline
