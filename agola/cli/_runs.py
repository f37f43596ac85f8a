"""Runs as a person refers to them and reads them: ``3`` or ``#3`` (the run counter in its
group) as well as the run id, and the columns of ``agola run list`` / ``run show``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agola.cli._output import CliError
from agola.util.timefmt import format_seconds, parse_time

if TYPE_CHECKING:
    from agola.client import GatewayClient

_COUNTER = re.compile(r"^#?(\d+)$")
_PAGE = 40  # the gateway's largest page of runs


def run_counter(ref: str) -> int | None:
    """The counter a reference names (``3`` or ``#3``), or ``None`` for a run id."""
    m = _COUNTER.match(ref.strip())
    return int(m.group(1)) if m else None


async def run_group(gw: GatewayClient, project: str | None = None) -> str:
    """The run group a counter is looked up in: a project's, or the caller's direct runs."""
    if project:
        return f"/project/{(await gw.get_project(project)).id}"
    return f"/user/{(await gw.current_user()).id}"


async def resolve_run_id(gw: GatewayClient, ref: str, project: str | None = None) -> str:
    """The id of the run ``ref`` names: an id as is, ``N``/``#N`` the run with counter N of the
    caller's direct runs (or of ``project``'s runs)."""
    counter = run_counter(ref)
    if counter is None:
        return ref
    group = await run_group(gw, project)
    start = ""
    while True:
        page = await gw.list_runs(group, start=start, limit=_PAGE)
        for r in page:
            if r.counter == counter:
                return r.id
        # Newest first: past the counter, or at the end, it does not exist.
        if len(page) < _PAGE or page[-1].counter < counter:
            break
        start = page[-1].id
    where = f"project {project}" if project else "your direct runs"
    raise CliError(f"no run #{counter} in {where} (agola run list shows the counters)")


def result_of(phase: str, result: str) -> str:
    """The result as a person reads it: a run that failed its setup has failed."""
    if phase == "setuperror" and result in ("", "unknown"):
        return "failed"
    return result


def phase_result(r: Any) -> str:
    result = result_of(r.phase, r.result)
    if r.phase == "finished" or r.phase == "setuperror":
        return f"{r.phase}/{result}"
    return r.phase


def group_of(r: Any) -> str:
    """Where a run comes from: its project, or ``direct`` with its repository for a direct run."""
    a = r.annotations
    if a.get("run_type") == "project" or a.get("projectid"):
        return "project " + a.get("projectid", "")[:8]
    return "direct"


def branch_of(r: Any) -> str:
    a = r.annotations
    if a.get("branch"):
        return str(a["branch"])
    if a.get("tag"):
        return "tag " + a["tag"]
    return str(a.get("ref", ""))


def duration(start: str | None, end: str | None, now: datetime | None = None) -> str:
    """``1m05s``-style duration from start to end (or to ``now`` while running); "" if not started."""
    began = parse_time(start)
    ended = parse_time(end) or now
    if began is None or ended is None:
        return ""
    return format_seconds((ended - began).total_seconds(), compact=True)


def start_time(r: Any) -> str:
    began = parse_time(r.start_time) or parse_time(r.enqueue_time)
    return began.astimezone().strftime("%Y-%m-%d %H:%M:%S") if began else ""
