"""Run every benchmark and print one table: ``python -m bench [--quick] [--only AREA ...]``.

Each module ``bench/<area>.py`` exposes ``async def run(quick: bool = False) -> list[BenchRow]``.
Benchmarks never run as part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from bench.common import BenchRow

SKIP = {"common", "__main__"}


def _areas() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in SKIP)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def render(rows: list[BenchRow]) -> str:
    header = ["id", "what", "ours", "baseline", "unit", "ratio", "target", "met", "note"]
    lines = [
        [
            r.id, r.what, _fmt(r.ours), _fmt(r.baseline), r.unit,
            "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
            {True: "yes", False: "NO", None: "-"}[r.met], r.note,
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)] if lines else [len(h) for h in header]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |" for line in lines]
    return "\n".join(out)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", nargs="*", default=None, help=f"areas to run (default all: {', '.join(_areas())})")
    args = parser.parse_args(argv)
    rows: list[BenchRow] = []
    failed = []
    for area in args.only or _areas():
        t0 = time.monotonic()
        print(f"# running bench/{area}.py ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{area}")
            rows.extend(await module.run(quick=args.quick))
        except Exception:  # noqa: BLE001 - one failing benchmark must not hide the others
            traceback.print_exc()
            failed.append(area)
        print(f"# bench/{area}.py took {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
    print(render(sorted(rows, key=lambda r: r.id)))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
