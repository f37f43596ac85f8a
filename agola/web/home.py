"""The home page: the signed-in user's recent runs, their direct runs and the runs of their
projects (those of their own project tree and of the organizations they belong to) in one list,
newest first, each naming where it ran. Live like the other lists (the page is fetched again on
run events).

The projects are found by walking the project group trees with the gateway's actions (so only
projects the user may see), at most ``MAX_GROUPS`` groups and ``MAX_PROJECTS`` projects; the runs
come from one runs query over all their run groups (each checked by the action).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from agola.errors import AgolaError
from agola.services.gateway.actions import projects as project_actions
from agola.services.gateway.actions import runs as run_actions
from agola.util.log import get_logger
from agola.web.handlers import PAGE_SIZE, Caller, caller_of, run_rows
from agola.web.render import page

__all__ = ["home"]

log = get_logger(__name__)

MAX_GROUPS = 30
MAX_PROJECTS = 40


async def _my_projects(caller: Caller) -> dict[str, str]:
    """The user's projects: id -> path, breadth first from their root and their organizations'."""
    user = caller.ident.user
    assert user is not None
    roots = [f"user/{user.name}"]
    try:
        # The user's own memberships (the configstore's answer for this user only); what is under
        # each organization is then read through the actions, with their permission checks.
        roots += [f"org/{m.organization.name}" for m in await caller.svc.configstore.get_user_orgs(user.id)]
    except AgolaError as err:
        log.warning("home page without organizations", error=err.message)
    projects: dict[str, str] = {}
    queue, seen = roots, 0
    while queue and seen < MAX_GROUPS and len(projects) < MAX_PROJECTS:
        group, queue, seen = queue[0], queue[1:], seen + 1
        try:
            for p in await project_actions.get_project_group_projects(caller.svc, caller.ident, group):
                projects.setdefault(p.project.id, p.path)
            queue += [g.path for g in await project_actions.get_project_group_subgroups(caller.svc, caller.ident,
                                                                                       group)]
        except AgolaError as err:
            log.info("home page skips a project group", group=group, error=err.message)
    return dict(list(projects.items())[:MAX_PROJECTS])


def _place(group: str, direct: str, projects: dict[str, str]) -> dict[str, str]:
    """Where a run ran: a project (its page) or the user's direct runs."""
    parts = group.split("/")
    if len(parts) > 2 and parts[1] == "project" and parts[2] in projects:
        path = projects[parts[2]]
        return {"label": path, "href": f"/projects/{quote(path, safe='')}"}
    if group == direct or group.startswith(direct + "/"):
        return {"label": "direct run", "href": "/runs?group=" + quote(direct, safe="")}
    return {"label": "", "href": ""}


async def home(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    runs: list[dict[str, Any]] = []
    group = ""
    projects: dict[str, str] = {}
    if caller.ident.user is not None:
        group = f"/user/{caller.ident.user.id}"
        projects = await _my_projects(caller)
        query = run_actions.RunsQuery(group=group, more_groups=tuple(f"/project/{pid}" for pid in projects),
                                      limit=PAGE_SIZE)
        runs = [r | {"place": _place(r["group"], group, projects)}
                for r in run_rows(await run_actions.list_runs(caller.svc, caller.ident, query))]
    return page("home.html", **caller.context(runs=runs, group=group, projects=len(projects), live_events=True))
