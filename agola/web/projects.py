"""Organization, project group and project pages: the tree (a group's subgroups and projects,
breadcrumbs up to the user or organization owning it), members, secrets by name only, variables,
and a project's runs (recent, and the newest of each branch, tag and pull request). Each calls the
gateway's actions as the signed-in user: a refusal is a 403 page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agola.errors import BadRequest
from agola.services.gateway.actions import orgs as org_actions
from agola.services.gateway.actions import projects as project_actions
from agola.services.gateway.actions import runs as run_actions
from agola.services.gateway.actions import secrets as secret_actions
from agola.services.gateway.api import serialize
from agola.services.gateway.permissions import is_project_owner
from agola.types.configstore import RemoteRepositoryConfigType
from agola.web.accounts import CONFIG_PAGE_SIZE, next_page
from agola.web.handlers import Caller, caller_of, form_caller, page_handler, run_rows
from agola.web.render import page, redirect

__all__ = ["add_routes", "crumbs", "when_text"]

RECENT_RUNS = 10
# What a project page shows in its own places; any other field the API returns goes to "Details".
_SHOWN = {"id", "name", "path", "parent_path", "visibility", "global_visibility"}


def crumbs(path: str) -> list[dict[str, str]]:
    """Links for each level of a group or project path (``org/acme/backend/api``): the owner's
    page, then each group."""
    parts = path.split("/")
    if len(parts) < 2:
        return []
    owner = {"label": parts[1], "href": f"/orgs/{parts[1]}" if parts[0] == "org" else f"/groups/user/{parts[1]}"}
    out = [owner]
    for i in range(2, len(parts)):
        out.append({"label": parts[i], "href": "/groups/" + "/".join(parts[: i + 1])})
    return out


def when_text(when: dict[str, Any] | None) -> str:
    """A variable value's ``when`` as people write it: ``branch main, /^rel-/; tag not v0``."""
    if not when:
        return ""
    parts = []
    for kind in ("branch", "tag", "ref"):
        conditions = when.get(kind) or {}
        words = [_condition(c) for c in conditions.get("include") or []]
        words += ["not " + _condition(c) for c in conditions.get("exclude") or []]
        if words:
            parts.append(f"{kind} {', '.join(words)}")
    return "; ".join(parts)


def _condition(c: dict[str, Any]) -> str:
    match = str(c.get("match", ""))
    return f"/{match}/" if c.get("type") == "regexp" else match


async def _secrets_and_variables(caller: Caller, parent_type: str, ref: str) -> dict[str, Any]:
    """Secrets (names and where they are defined, never values) and variables visible at ``ref``,
    the levels above included (nearest first, overridden ones dropped)."""
    secrets = await secret_actions.list_secrets(caller.svc, caller.ident, parent_type, ref, True, True)
    variables = await secret_actions.list_variables(caller.svc, caller.ident, parent_type, ref, True, True)
    rows = [serialize.variable(v) for v in variables]
    for row in rows:
        for value in row["values"]:
            value["when_text"] = when_text(value["when"])
    return {"secrets": [serialize.secret(s) for s in secrets], "variables": rows}


async def orgs_list(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    start = request.query.get("start", "")
    orgs = [serialize.org(o) for o in await org_actions.list_orgs(caller.svc, caller.ident, start, CONFIG_PAGE_SIZE,
                                                                  True)]
    return page("orgs.html", **caller.context(orgs=orgs, start=start, older=next_page("/orgs", orgs)))


async def org_page(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    members = serialize.org_members(await org_actions.get_org_members(caller.svc, caller.ident,
                                                                        request.match_info["org"]))
    org = members["organization"]
    group = f"org/{org['name']}"
    subgroups = [serialize.project_group(g) for g in
                 await project_actions.get_project_group_subgroups(caller.svc, caller.ident, group)]
    projects = [serialize.project(p) for p in
                await project_actions.get_project_group_projects(caller.svc, caller.ident, group)]
    return page("org.html", **caller.context(org=org, members=members["members"], group=group, subgroups=subgroups,
                                              projects=projects))


async def group_page(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ref = request.match_info["ref"]
    group = serialize.project_group(await project_actions.get_project_group(caller.svc, caller.ident, ref))
    subgroups = [serialize.project_group(g) for g in
                 await project_actions.get_project_group_subgroups(caller.svc, caller.ident, ref)]
    projects = [serialize.project(p) for p in
                await project_actions.get_project_group_projects(caller.svc, caller.ident, ref)]
    more = await _secrets_and_variables(caller, "projectgroup", ref)
    return page("group.html", **caller.context(group=group, crumbs=crumbs(group["path"]), subgroups=subgroups,
                                              projects=projects, **more))


async def project_page(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    ref = request.match_info["ref"]
    found = await project_actions.get_project(caller.svc, caller.ident, ref)
    project = serialize.project(found)
    # The "run a branch" form shows to those the action lets create runs (it checks again).
    can_run = (found.project.remote_repository_config_type == RemoteRepositoryConfigType.REMOTESOURCE
               and await is_project_owner(caller.svc.configstore, caller.ident, found.owner_type, found.owner_id))
    root = f"/project/{project['id']}"
    recent = await run_actions.list_runs(caller.svc, caller.ident, run_actions.RunsQuery(group=root,
                                                                                         limit=RECENT_RUNS))
    latest = {}
    for kind in ("branch", "tag", "pr"):
        latest[kind] = await run_actions.list_runs(caller.svc, caller.ident, run_actions.RunsQuery(
            group=f"{root}/{kind}", last_run=True, limit=RECENT_RUNS))
    more = await _secrets_and_variables(caller, "project", ref)
    details = {k: v for k, v in project.items() if k not in _SHOWN}
    return page("project.html", **caller.context(
        project=project, crumbs=crumbs(project["parent_path"]), root=root, details=details,
        recent=run_rows(recent), latest={k: run_rows(v) for k, v in latest.items()}, can_run=can_run,
        live_events=True, **more))


async def project_run(request: web.Request) -> web.Response:
    """Runs of a branch or tag of the project's repository, without a push (the API's createrun)."""
    caller, form = await form_caller(request)
    ref = request.match_info["ref"]
    kind, name = str(form.get("kind") or "branch"), str(form.get("name") or "").strip()
    if kind not in ("branch", "tag") or not name:
        raise BadRequest("a branch or a tag name is needed")
    runs = await project_actions.project_create_run(caller.svc, caller.ident, ref, **{kind: name})
    if len(runs) == 1:
        return redirect(f"/runs/{runs[0].id}")
    project = await project_actions.get_project(caller.svc, caller.ident, ref)
    return redirect("/runs?" + urlencode({"group": f"/project/{project.project.id}/{kind}/{name}"}))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/orgs", page_handler(orgs_list))
    r.add_get("/orgs/{org}", page_handler(org_page))
    r.add_get("/groups/{ref:.+}", page_handler(group_page))
    r.add_get("/projects/{ref:.+}", page_handler(project_page))
    r.add_post("/projectruns/{ref:.+}", page_handler(project_run))
