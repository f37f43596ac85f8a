"""Maintenance mode, export and import of the runservice (spec §3.12): the shared handlers of
``agola.services.maintenanceapi``, with one guard of its own.

An export holds the datamanager's objects: run configs, counters and archived runs. Runs still in
coordination (queued, running, or finished and not archived yet) are not in it, so an export is
refused while there are any, naming them, unless forced (``?force=true``): never a silent
partial backup.
"""

from __future__ import annotations

from aiohttp import web

from agola.errors import Conflict
from agola.services import maintenanceapi
from agola.services.runservice.api.common import role_of
from agola.types.runservice import Run

MAINTENANCE_PATHS = maintenanceapi.MAINTENANCE_PATHS
# Runs named in the refusal; the rest are counted.
NAMED_RUNS = 10


def describe_run(run: Run) -> str:
    state = "finished, not archived yet" if run.phase.is_finished else str(run.phase)
    return f"run {run.counter} of {run.group} ({run.id}, {state})"


async def refuse_with_active_runs(request: web.Request) -> None:
    runs = sorted((s.run for s in await role_of(request).store_required().list_active_runs()),
                  key=lambda r: (r.group, r.counter))
    if not runs:
        return
    named = "; ".join(describe_run(r) for r in runs[:NAMED_RUNS])
    more = f"; and {len(runs) - NAMED_RUNS} more" if len(runs) > NAMED_RUNS else ""
    raise Conflict(
        f"{len(runs)} run(s) not archived yet would be left out of the export: {named}{more}. "
        "Wait for them to finish (they are archived shortly after), stop them, or force the export "
        "to leave them out (agola export --force, ?force=true)"
    )


def add_routes(app: web.Application) -> None:
    maintenanceapi.add_routes(app, "runservice", role_of, export_guard=refuse_with_active_runs)
