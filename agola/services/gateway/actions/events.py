"""Run events for clients: the runservice's server-sent events, relayed to each caller with only
the runs that caller may see (direct runs of others and private projects are filtered out)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from agola.errors import NotExist
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import can_get_run, require_user
from agola.types.runservice import RunEvent

_CACHE_LIMIT = 4096


async def run_events(svc: Services, ident: Identity) -> AsyncIterator[RunEvent]:
    require_user(ident)
    return _filtered(svc, ident)


async def _filtered(svc: Services, ident: Identity) -> AsyncIterator[RunEvent]:
    groups: dict[str, str] = {}  # run id -> run group
    allowed: dict[str, bool] = {}  # run group -> visible
    async for event in svc.runservice.run_events():
        if not ident.admin and not await _visible(svc, ident, event.run_id, groups, allowed):
            continue
        yield event


async def _visible(svc: Services, ident: Identity, run_id: str, groups: dict[str, str], allowed: dict[str, bool]) -> bool:
    group = groups.get(run_id)
    if group is None:
        try:
            group = (await svc.runservice.get_run(run_id)).run.group
        except NotExist:
            return False
        if len(groups) >= _CACHE_LIMIT:
            groups.clear()
        groups[run_id] = group
    if group not in allowed:
        if len(allowed) >= _CACHE_LIMIT:
            allowed.clear()
        allowed[group] = await can_get_run(svc.configstore, ident, group)
    return allowed[group]
