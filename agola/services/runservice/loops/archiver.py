"""The finished runs archiver (spec §3.9): a finished run whose logs and archives are all in
object storage is marked archived, written to the datamanager and removed from coordination.
Cancelled runs are archived too (quirk 7 of the reference, fixed)."""

from __future__ import annotations

from agola.errors import Conflict
from agola.services.runservice import logic
from agola.services.runservice.core import RunserviceCore


class FinishedRunsArchiver:
    name = "finishedrunsarchiver"
    lock = "finishedrunsarchiver"

    def __init__(self, core: RunserviceCore) -> None:
        self.core = core

    async def run_once(self) -> None:
        store = self.core.store
        for stored in await store.list_active_runs():
            run, revision = stored.run, stored.revision
            if not run.archived:
                if not logic.archivable(run):
                    continue
                run = logic.mark_archived(run)
                try:
                    revision = await store.put_run(run, revision)
                except Conflict:
                    continue
            await store.archive_run(run, revision)
