"""Expiry of caches and workspace archives (spec §3.6 cacheCleaner / workspaceCleaner)."""

from __future__ import annotations

from datetime import timedelta

from agola.services.runservice.archives import CACHES_PREFIX, WORKSPACES_PREFIX, expire_objects
from agola.services.runservice.core import RunserviceCore


class CacheCleaner:
    name = "cachecleaner"
    lock = "cachecleaner"

    def __init__(self, core: RunserviceCore, expire_after: float) -> None:
        self.core = core
        self.expire_after = timedelta(seconds=expire_after)

    async def run_once(self) -> int:
        return await expire_objects(self.core.ost, CACHES_PREFIX, self.core.now() - self.expire_after)


class WorkspaceCleaner:
    name = "workspacecleaner"
    lock = "workspacecleaner"

    def __init__(self, core: RunserviceCore, expire_after: float) -> None:
        self.core = core
        self.expire_after = timedelta(seconds=expire_after)

    async def run_once(self) -> int:
        return await expire_objects(self.core.ost, WORKSPACES_PREFIX, self.core.now() - self.expire_after)
