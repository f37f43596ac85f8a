"""The emulator's GitLab dialect: REST API v4 (projects by id or URL-encoded path, read from the raw
request path as GitLab does; ``X-Next-Page`` pagination), the OAuth2 provider on ``/oauth/...``
and webhooks as GitLab sends them, all on the emulator's real repositories (``model.Forge``).

Answers and payloads start from the reference pack's real examples (``examples/gitlab/``) with the
project's id, path, URLs, the refs, SHAs, commits and users filled in. Deliveries carry
``X-Gitlab-Event`` (``Push Hook``, ``Tag Push Hook``, ``Merge Request Hook``), the hook's secret as
``X-Gitlab-Token``, ``X-Gitlab-Event-UUID`` and ``Idempotency-Key``, as GitLab.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.support.forge import gitops
from tests.support.forge.app import ApiError, Handler, _body, _forge, _json, _require_user, add_key, api, remove_key
from tests.support.forge.gitlab import example
from tests.support.forge.model import Forge, Hook, Key, PullRequest, Repo, Status, User

STATES = ("pending", "running", "success", "failed", "canceled")
# What a hook's ``*_events`` flags subscribe to, by X-Gitlab-Event.
HOOK_FLAGS = {"push_events": "Push Hook", "tag_push_events": "Tag Push Hook", "merge_requests_events": "Merge Request Hook"}
# GitLab's merge request actions for the emulator's PR events.
MR_ACTIONS = {"opened": "open", "synchronized": "update"}


def user_json(forge: Forge, u: User) -> dict[str, Any]:
    data: dict[str, Any] = example("api_user_GET.json")
    data.update(id=u.id, username=u.login, name=u.full_name, email=u.email, web_url=f"{forge.url}/{u.login}",
                avatar_url=f"{forge.url}/uploads/user/avatar/{u.id}/avatar.png")
    return data


def project_json(forge: Forge, r: Repo, *, listed: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = example("api_projects_GET_list.json")[0] if listed else example("api_project_GET.json")
    web_url = f"{forge.url}/{r.path}"
    data.update(id=r.id, name=r.name, path=r.name, path_with_namespace=r.path, name_with_namespace=f"{r.owner} / {r.name}",
                default_branch=r.default_branch, web_url=web_url, http_url_to_repo=f"{web_url}.git",
                ssh_url_to_repo=forge.ssh_url(r.path), creator_id=forge.users[r.owner].id)
    data["namespace"] = {**data["namespace"], "id": forge.users[r.owner].id, "name": r.owner, "path": r.owner,
                         "full_path": r.owner, "kind": "user"}
    base = f"{forge.url}/api/v4/projects/{r.id}"
    data["_links"] = {**(data.get("_links") or {}), "self": base}
    if r.fork_of:
        data["forked_from_project"] = project_json(forge, forge.repos[r.fork_of])
    return data


def _hook_project(forge: Forge, r: Repo, template: dict[str, Any]) -> dict[str, Any]:
    """A project as webhooks show it (``project``, ``source``, ``target``)."""
    web_url = f"{forge.url}/{r.path}"
    fields = {"id": r.id, "name": r.name, "web_url": web_url, "git_ssh_url": forge.ssh_url(r.path),
              "git_http_url": f"{web_url}.git", "namespace": r.owner, "path_with_namespace": r.path,
              "default_branch": r.default_branch, "homepage": web_url, "url": forge.ssh_url(r.path),
              "ssh_url": forge.ssh_url(r.path), "http_url": f"{web_url}.git", "avatar_url": None}
    return {**template, **{k: v for k, v in fields.items() if k in template or k in ("id", "path_with_namespace")}}


def _hook_repository(forge: Forge, r: Repo, template: dict[str, Any]) -> dict[str, Any]:
    web_url = f"{forge.url}/{r.path}"
    fields = {"name": r.name, "url": forge.ssh_url(r.path), "homepage": web_url, "git_http_url": f"{web_url}.git",
              "git_ssh_url": forge.ssh_url(r.path)}
    return {**template, **{k: v for k, v in fields.items() if k in template}}


def hook_json(r: Repo, h: Hook) -> dict[str, Any]:
    data: dict[str, Any] = example("api_hook_POST_create_response.json")
    data.update({flag: event in h.events for flag, event in HOOK_FLAGS.items()})
    data.update({k: False for k in data if k.endswith("_events") and k not in HOOK_FLAGS})
    data.update(id=h.id, url=h.url, project_id=r.id)
    return data  # the token is never shown back


def error(forge: Forge, message: str, status: int) -> dict[str, Any]:
    return {"message": "401 Unauthorized" if status == 401 else message}


# ----------------------------------------------------------------------------------- API v4


def _page(request: web.Request, items: list[Any]) -> web.Response:
    size = max(1, min(int(request.query.get("per_page") or 20), 100))
    page = max(1, int(request.query.get("page") or 1))
    pages = max(1, (len(items) + size - 1) // size)
    headers = {"X-Page": str(page), "X-Per-Page": str(size), "X-Total": str(len(items)), "X-Total-Pages": str(pages),
               "X-Next-Page": str(page + 1) if page < pages else "", "X-Prev-Page": str(page - 1) if page > 1 else ""}
    return web.json_response(items[(page - 1) * size: page * size], headers=headers)


async def get_user(request: web.Request) -> web.Response:
    return _json(user_json(_forge(request), _require_user(request)))


async def list_projects(request: web.Request) -> web.Response:
    forge, user = _forge(request), _require_user(request)
    mine = sorted((r for r in forge.repos.values() if r.owner == user.login), key=lambda r: r.id)
    return _page(request, [project_json(forge, r, listed=True) for r in mine])


async def project_call(request: web.Request) -> web.StreamResponse:
    """``/api/v4/projects/:id/...``: ``:id`` is a number or a URL-encoded path (``%2F``), so the
    raw path is split before decoding."""
    forge = _forge(request)
    parts = request.raw_path.split("?", 1)[0].split("/")[4:]  # after /api/v4/projects
    key = unquote(parts[0]) if parts else ""
    repo = forge.repos.get(key) or next((r for r in forge.repos.values() if str(r.id) == key), None)
    if repo is None:
        raise ApiError(404, "404 Project Not Found")
    rest = [unquote(p) for p in parts[1:]]
    user = _require_user(request)
    method = request.method
    if not rest and method == "GET":
        return _json(project_json(forge, repo))
    head, tail = rest[0], rest[1:]
    if head in ("deploy_keys", "hooks", "statuses") and user.login != repo.owner:
        raise ApiError(403, "403 Forbidden")
    if head == "deploy_keys":
        return await _deploy_keys(request, forge, repo, method, tail)
    if head == "hooks":
        return await _hooks(request, forge, repo, method, tail)
    if head == "repository" and method == "GET" and len(tail) == 2:
        return await _repository(request, forge, repo, tail[0], tail[1])
    if head == "statuses" and method == "POST" and len(tail) == 1:
        return await _add_status(request, forge, repo, user, tail[0])
    raise ApiError(404, "404 Not Found")


def _key_json(k: Key) -> dict[str, Any]:
    data: dict[str, Any] = example("api_deploy_key_POST_create_response.json")
    data.update(id=k.id, title=k.title, key=k.key, can_push=not k.read_only)
    return data


async def _deploy_keys(request: web.Request, forge: Forge, repo: Repo, method: str, tail: list[str]) -> web.Response:
    if method == "GET" and not tail:
        return _page(request, [_key_json(k) for k in repo.keys.values()])
    if method == "DELETE" and len(tail) == 1:
        remove_key(forge, repo, int(tail[0]), "404 Deploy Key Not Found")
        return web.Response(status=204)
    if method == "POST" and not tail:
        body = await _body(request)
        key = add_key(forge, repo, str(body.get("title") or ""), str(body.get("key") or ""),
                      not body.get("can_push", False), status=400, invalid="key is invalid",
                      taken="fingerprint has already been taken")
        return _json(_key_json(key), 201)
    raise ApiError(404, "404 Not Found")


async def _hooks(request: web.Request, forge: Forge, repo: Repo, method: str, tail: list[str]) -> web.Response:
    if method == "GET" and not tail:
        return _page(request, [hook_json(repo, h) for h in repo.hooks.values()])
    if method == "DELETE" and len(tail) == 1:
        with forge.lock:
            if repo.hooks.pop(int(tail[0]), None) is None:
                raise ApiError(404, "404 Not Found")
        return web.Response(status=204)
    if method == "POST" and not tail:
        body = await _body(request)
        if not body.get("url"):
            raise ApiError(400, "url is missing")
        # GitLab's default: push events only.
        events = tuple(e for flag, e in HOOK_FLAGS.items() if body.get(flag, flag == "push_events"))
        hook = Hook(forge.next_id(), str(body["url"]), str(body.get("token") or ""), events, type="gitlab")
        with forge.lock:
            repo.hooks[hook.id] = hook
        return _json(hook_json(repo, hook), 201)
    raise ApiError(404, "404 Not Found")


async def _repository(request: web.Request, forge: Forge, repo: Repo, kind: str, name: str) -> web.Response:
    if kind == "files":
        ref = request.query.get("ref") or repo.default_branch
        content = await asyncio.to_thread(gitops.read_file, repo.git_dir, ref, name)
        if content is None:
            raise ApiError(404, "404 File Not Found")
        data: dict[str, Any] = example("api_repository_file_GET.json")
        data.update(file_name=name.rsplit("/", 1)[-1], file_path=name, size=len(content), encoding="base64",
                    content=base64.b64encode(content).decode(), ref=ref, commit_id=ref, last_commit_id=ref,
                    blob_id=hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest())
        return _json(data)
    if kind in ("branches", "tags"):
        ref = f"refs/{'heads' if kind == 'branches' else 'tags'}/{name}"
        sha = (await asyncio.to_thread(gitops.refs, repo.git_dir)).get(ref)
        if sha is None:
            raise ApiError(404, f"404 {'Branch' if kind == 'branches' else 'Tag'} Not Found")
        data = example("api_branch_GET.json" if kind == "branches" else "api_tag_GET.json")
        data["name"] = name
        data["commit"] = await _commit_json(forge, repo, await asyncio.to_thread(gitops.peel, repo.git_dir, sha))
        return _json(data)
    if kind == "commits":
        return _json(await _commit_json(forge, repo, name))
    raise ApiError(404, "404 Not Found")


async def _commit_json(forge: Forge, repo: Repo, sha: str) -> dict[str, Any]:
    try:
        c = await asyncio.to_thread(gitops.commit, repo.git_dir, sha)
    except RuntimeError:
        raise ApiError(404, "404 Commit Not Found") from None
    data: dict[str, Any] = example("api_commit_GET.json")
    data.update(id=c["sha"], short_id=c["sha"][:8], title=c["message"].splitlines()[0], message=c["message"],
                author_name=c["author_name"], author_email=c["author_email"], committer_name=c["author_name"],
                committer_email=c["author_email"], created_at=c["date"], authored_date=c["date"],
                committed_date=c["date"], web_url=f"{forge.url}/{repo.path}/-/commit/{c['sha']}")
    return data


async def _add_status(request: web.Request, forge: Forge, repo: Repo, user: User, sha: str) -> web.Response:
    body = await _body(request)
    state, name = str(body.get("state") or ""), str(body.get("name") or body.get("context") or "default")
    if state not in STATES:
        raise ApiError(400, "state does not have a valid value")
    last = next((s for s in reversed(repo.statuses) if s.sha == sha and s.context == name), None)
    if last is not None and last.state == state:
        raise ApiError(400, f"Cannot transition status via :{state} from :{state}")
    status = Status(forge.next_id(), sha, state, name, str(body.get("description") or ""),
                    str(body.get("target_url") or ""), user.login)
    with forge.lock:
        repo.statuses.append(status)
    data: dict[str, Any] = example("api_status_POST_create_response.json")
    data.update(id=status.id, sha=sha, name=name, status=state, description=status.description,
                target_url=status.target_url, author=user_json(forge, user))
    return _json(data, 201)


def routes() -> list[tuple[str, str, str, Handler]]:
    v4 = "/api/v4"
    table: list[tuple[str, str, str, Handler]] = [
        ("GET", v4 + "/user", "get_user", get_user),
        ("GET", v4 + "/projects", "user_repos", list_projects),
        ("*", v4 + "/projects/{tail:.+}", "project", project_call),
    ]
    return [(m, p, n, api(n, fn, error)) for m, p, n, fn in table]


# ------------------------------------------------------------------------------------ webhooks


def headers(hook: Hook, event: str, delivery_id: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": "GitLab/17.6.0", "X-Gitlab-Event": event,
            "X-Gitlab-Token": hook.secret, "X-Gitlab-Event-UUID": delivery_id, "Idempotency-Key": delivery_id,
            "X-Gitlab-Webhook-UUID": f"hook-{hook.id}", "X-Gitlab-Instance": "http://127.0.0.1"}


def _commit(forge: Forge, r: Repo, c: dict[str, Any]) -> dict[str, Any]:
    return {"id": c["sha"], "message": c["message"], "title": c["message"].splitlines()[0], "timestamp": c["date"],
            "url": f"{forge.url}/{r.path}/-/commit/{c['sha']}",
            "author": {"name": c["author_name"], "email": c["author_email"]}, "added": [], "modified": [], "removed": []}


def push_payload(forge: Forge, r: Repo, ref: str, before: str, after: str, commits: list[dict[str, Any]],
                 head: dict[str, Any] | None, pusher: User) -> dict[str, Any]:
    tag = ref.startswith("refs/tags/")
    data: dict[str, Any] = example("webhook_tag_push_annotated.json" if tag else "webhook_push_branch.json")
    checkout = head["sha"] if head else None
    listed = [head] if tag and head else list(reversed(commits))  # GitLab: oldest first
    data.update(before=before, after=after, ref=ref, checkout_sha=checkout, message=None, user_id=pusher.id,
                user_name=pusher.full_name, user_username=pusher.login, user_email=pusher.email,
                user_avatar=f"{forge.url}/uploads/user/avatar/{pusher.id}/avatar.png", project_id=r.id,
                project=_hook_project(forge, r, data["project"]), commits=[_commit(forge, r, c) for c in listed],
                total_commits_count=len(listed), repository=_hook_repository(forge, r, data["repository"]))
    return data


def pull_request_payload(forge: Forge, base: Repo, pr: PullRequest, action: str) -> dict[str, Any]:
    data: dict[str, Any] = example("webhook_merge_request_open.json" if action == "opened"
                                   else "webhook_merge_request_update_new_commits.json")
    head_repo, author = forge.repos[pr.head_repo], forge.users[pr.author]
    c = gitops.commit(head_repo.git_dir, pr.head_sha)
    attrs = data["object_attributes"]
    attrs.update(id=pr.id, iid=pr.number, title=pr.title, state="opened", action=MR_ACTIONS[action],
                 url=f"{forge.url}/{base.path}/-/merge_requests/{pr.number}", author_id=author.id,
                 source_branch=pr.head_branch, target_branch=pr.base_branch, source_project_id=head_repo.id,
                 target_project_id=base.id, source=_hook_project(forge, head_repo, attrs["source"]),
                 target=_hook_project(forge, base, attrs["target"]), last_commit=_commit(forge, head_repo, c))
    if action == "opened":
        attrs.pop("oldrev", None)
    else:
        attrs["oldrev"] = pr.base_sha  # the emulator keeps no previous head: any other commit says "new code"
    data.update(user={**data["user"], "id": author.id, "name": author.full_name, "username": author.login,
                      "avatar_url": f"{forge.url}/uploads/user/avatar/{author.id}/avatar.png"},
                project=_hook_project(forge, base, data["project"]),
                repository=_hook_repository(forge, base, data["repository"]))
    return data
