"""The emulator's GitHub dialect: REST API v3 in GitHub Enterprise Server's layout (``/api/v3``),
the OAuth app endpoints (same paths as Gitea's), and webhooks as GitHub sends them, all on the
emulator's real repositories (``model.Forge``).

Answers and payloads start from the reference pack's real examples (``examples/github/``): the
example's URLs and names are moved to the emulator's repository (``retarget``), then ids, refs,
SHAs, commits, users and clone URLs are filled in. Deliveries carry ``X-GitHub-Event``,
``X-GitHub-Delivery``, ``X-GitHub-Hook-ID`` and ``X-Hub-Signature-256`` (plus the SHA-1
``X-Hub-Signature``), as GitHub.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from tests.support.forge import gitops
from tests.support.forge.app import (
    ApiError,
    Handler,
    _admin_repo,
    _body,
    _forge,
    _json,
    _repo,
    _require_user,
    add_key,
    api,
    current_user,
    git_tag,
    remove_key,
)
from tests.support.forge.github import example
from tests.support.forge.hooks import HOOKS_KEY
from tests.support.forge.model import Forge, Hook, Key, PullRequest, Repo, Status, User

EXAMPLE_REPO = "Codertocat/Hello-World"
STATES = ("error", "failure", "pending", "success")
# GitHub's actions for our emulator's PR events.
PR_ACTIONS = {"opened": "opened", "synchronized": "synchronize"}


def retarget(data: Any, forge: Forge, example_path: str, path: str) -> Any:
    """An example with its github.com URLs and repository name moved to the emulator's ``path``."""
    text = json.dumps(data)
    text = text.replace("https://api.github.com/", f"{forge.url}/api/v3/").replace("https://github.com/", f"{forge.url}/")
    text = text.replace(example_path, path)
    return json.loads(text)


def user_json(forge: Forge, u: User) -> dict[str, Any]:
    data: dict[str, Any] = retarget(example("api_user_GET_user.json"), forge, "octocat", u.login)
    data.update(id=u.id, login=u.login, name=u.full_name, email=u.email)
    return data


def _owner(forge: Forge, u: User, template: dict[str, Any]) -> dict[str, Any]:
    owner = retarget(template, forge, template.get("login") or "", u.login)
    owner.update(id=u.id, login=u.login)
    if "name" in owner:
        owner.update(name=u.login, email=u.email)
    return owner


def repo_json(forge: Forge, r: Repo, viewer: User | None = None, *, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """A repository as ``GET /repos/{owner}/{repo}`` (or, with ``template``, a webhook) shows it."""
    base = template if template is not None else example("api_repo_GET.json")
    data: dict[str, Any] = retarget(base, forge, base["full_name"], r.path)
    html = f"{forge.url}/{r.path}"
    data.update(id=r.id, name=r.name, full_name=r.path, default_branch=r.default_branch, html_url=html,
                clone_url=f"{html}.git", ssh_url=forge.ssh_url(r.path), svn_url=html, fork=r.fork_of is not None,
                private=False, language=data.get("language"))  # the example has no language: GitHub sends null
    data["owner"] = _owner(forge, forge.users[r.owner], data["owner"])
    for key in ("parent", "source", "organization", "template_repository"):
        data.pop(key, None)
    if r.fork_of and template is None:
        data["parent"] = data["source"] = repo_json(forge, forge.repos[r.fork_of])
    if template is None:
        admin = viewer is not None and viewer.login == r.owner
        data["permissions"] = {"admin": admin, "maintain": admin, "push": admin, "triage": admin, "pull": True}
    return data


def key_json(forge: Forge, r: Repo, k: Key) -> dict[str, Any]:
    data: dict[str, Any] = example("api_deploy_key_POST_create_response.json")
    data.update(id=k.id, key=k.key, title=k.title, read_only=k.read_only,
                url=f"{forge.url}/api/v3/repos/{r.path}/keys/{k.id}")
    return data


def hook_json(forge: Forge, r: Repo, h: Hook) -> dict[str, Any]:
    data: dict[str, Any] = retarget(example("api_hook_POST_create_response.json"), forge, "octocat/Hello-World", r.path)
    # The secret is never shown back (GitHub masks it).
    config = {"url": h.url, "content_type": h.content_type, "insecure_ssl": "0"}
    if h.secret:
        config["secret"] = "********"
    data.update(id=h.id, name="web", events=list(h.events), active=h.active, config=config)
    return data


def status_json(forge: Forge, r: Repo, s: Status) -> dict[str, Any]:
    data: dict[str, Any] = retarget(example("api_status_POST_create_response.json"), forge, "octocat/Hello-World", r.path)
    data.update(id=s.id, state=s.state, description=s.description, target_url=s.target_url, context=s.context,
                url=f"{forge.url}/api/v3/repos/{r.path}/statuses/{s.sha}", creator=user_json(forge, forge.users[s.creator]))
    return data


def error(forge: Forge, message: str, status: int) -> dict[str, Any]:
    """GitHub's error body (``api_error_404.json`` for a 404)."""
    if status == 404:
        return dict(example("api_error_404.json"))
    return {"message": message, "documentation_url": "https://docs.github.com/rest"}


def _page(request: web.Request, items: list[Any]) -> web.Response:
    """A page of a list with GitHub's ``Link`` header."""
    size = max(1, min(int(request.query.get("per_page") or 30), 100))
    page = max(1, int(request.query.get("page") or 1))
    headers = {}
    if page * size < len(items):
        headers["Link"] = f'<{request.url.update_query(page=str(page + 1))}>; rel="next"'
    return web.json_response(items[(page - 1) * size: page * size], headers=headers)


# ----------------------------------------------------------------------------------- API v3


async def get_user(request: web.Request) -> web.Response:
    return _json(user_json(_forge(request), _require_user(request)))


async def user_repos(request: web.Request) -> web.Response:
    forge, user = _forge(request), _require_user(request)
    mine = sorted((r for r in forge.repos.values() if r.owner == user.login), key=lambda r: r.id)
    return _page(request, [repo_json(forge, r, user) for r in mine])


async def get_repo(request: web.Request) -> web.Response:
    return _json(repo_json(_forge(request), _repo(request), current_user(request)))


async def list_keys(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    return _page(request, [key_json(_forge(request), repo, k) for k in repo.keys.values()])


async def create_key(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    forge, body = _forge(request), await _body(request)
    key = add_key(forge, repo, str(body.get("title") or ""), str(body.get("key") or ""),
                  bool(body.get("read_only", False)),
                  invalid="Validation Failed: key is invalid. You must supply a key in OpenSSH public key format",
                  taken="Validation Failed: key is already in use")
    return _json(key_json(forge, repo, key), 201)


async def delete_key(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    remove_key(_forge(request), repo, int(request.match_info["id"]), "Not Found")
    return web.Response(status=204)


async def list_hooks(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    return _page(request, [hook_json(_forge(request), repo, h) for h in repo.hooks.values()])


async def create_hook(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    forge, body = _forge(request), await _body(request)
    config = body.get("config") or {}
    if body.get("name", "web") != "web" or not config.get("url"):
        raise ApiError(422, "Validation Failed: config.url is missing")
    hook = Hook(forge.next_id(), str(config["url"]), str(config.get("secret") or ""),
                tuple(str(e) for e in body.get("events") or ["push"]), type="web",
                content_type=str(config.get("content_type") or "form"), active=bool(body.get("active", True)))
    with forge.lock:
        repo.hooks[hook.id] = hook
    # GitHub pings a new hook at once.
    await request.app[HOOKS_KEY].send_to(hook, "ping", ping_payload(forge, repo, hook, _require_user(request)))
    return _json(hook_json(forge, repo, hook), 201)


async def delete_hook(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    with _forge(request).lock:
        if repo.hooks.pop(int(request.match_info["id"]), None) is None:
            raise ApiError(404, "Not Found")
    return web.Response(status=204)


async def contents(request: web.Request) -> web.Response:
    repo, path = _repo(request), request.match_info["path"]
    ref = request.query.get("ref") or repo.default_branch
    data = await asyncio.to_thread(gitops.read_file, repo.git_dir, ref, path)
    if data is None:
        raise ApiError(404, "Not Found")
    if request.headers.get("Accept") == "application/vnd.github.raw+json":
        return web.Response(body=data, content_type="application/vnd.github.raw")
    out: dict[str, Any] = retarget(example("api_contents_GET_file.json"), _forge(request), "octokit/octokit.rb", repo.path)
    encoded = base64.b64encode(data).decode()
    out.update(name=path.rsplit("/", 1)[-1], path=path, size=len(data), encoding="base64", type="file",
               content="\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)))
    return _json(out)


async def git_ref(request: web.Request) -> web.Response:
    repo, forge = _repo(request), _forge(request)
    ref = "refs/" + request.match_info["ref"]
    sha = (await asyncio.to_thread(gitops.refs, repo.git_dir)).get(ref)
    if sha is None:
        raise ApiError(404, "Not Found")
    kind = await asyncio.to_thread(gitops.object_type, repo.git_dir, sha)
    api_base = f"{forge.url}/api/v3/repos/{repo.path}/git"
    data: dict[str, Any] = example("api_git_ref_GET.json")
    data.update(ref=ref, url=f"{api_base}/{ref}", object={"type": kind, "sha": sha, "url": f"{api_base}/{kind}s/{sha}"})
    return _json(data)


async def git_commit(request: web.Request) -> web.Response:
    repo, forge = _repo(request), _forge(request)
    try:
        c = await asyncio.to_thread(gitops.commit, repo.git_dir, request.match_info["sha"])
    except RuntimeError:
        raise ApiError(404, "Not Found") from None
    data: dict[str, Any] = retarget(example("api_git_commit_GET.json"), forge, "octocat/Hello-World", repo.path)
    sig = {"name": c["author_name"], "email": c["author_email"], "date": c["date"]}
    data.update(sha=c["sha"], message=c["message"], author=sig, committer=sig,
                html_url=f"{forge.url}/{repo.path}/commit/{c['sha']}")
    return _json(data)


async def create_status(request: web.Request) -> web.Response:
    user, repo = _admin_repo(request)
    forge, body = _forge(request), await _body(request)
    state = str(body.get("state") or "")
    if state not in STATES or len(str(body.get("description") or "")) > 140:
        raise ApiError(422, "Validation Failed")
    status = Status(forge.next_id(), request.match_info["sha"], state, str(body.get("context") or "default"),
                    str(body.get("description") or ""), str(body.get("target_url") or ""), user.login)
    with forge.lock:
        repo.statuses.append(status)
    return _json(status_json(forge, repo, status), 201)


def routes() -> list[tuple[str, str, str, Handler]]:
    v3 = "/api/v3"
    repo = v3 + "/repos/{owner}/{repo}"
    table: list[tuple[str, str, str, Handler]] = [
        ("GET", v3 + "/user", "get_user", get_user),
        ("GET", v3 + "/user/repos", "user_repos", user_repos),
        ("GET", repo, "get_repo", get_repo),
        ("GET", repo + "/keys", "list_keys", list_keys),
        ("POST", repo + "/keys", "create_key", create_key),
        ("DELETE", repo + "/keys/{id:\\d+}", "delete_key", delete_key),
        ("GET", repo + "/hooks", "list_hooks", list_hooks),
        ("POST", repo + "/hooks", "create_hook", create_hook),
        ("DELETE", repo + "/hooks/{id:\\d+}", "delete_hook", delete_hook),
        ("GET", repo + "/contents/{path:.+}", "get_file", contents),
        ("GET", repo + "/git/ref/{ref:.+}", "git_ref", git_ref),
        # Gitea's git tag object answer is GitHub's (tag, sha, message, object{type, sha}).
        ("GET", repo + "/git/tags/{sha}", "git_tag", git_tag),
        ("GET", repo + "/git/commits/{sha}", "git_commit", git_commit),
        ("POST", repo + "/statuses/{sha}", "create_status", create_status),
    ]
    return [(m, p, n, api(n, fn, error)) for m, p, n, fn in table]


# ------------------------------------------------------------------------------------ webhooks


def headers(hook: Hook, event: str, delivery_id: str, body: bytes) -> dict[str, str]:
    out = {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/emulator", "X-GitHub-Event": event,
           "X-GitHub-Delivery": delivery_id, "X-GitHub-Hook-ID": str(hook.id),
           "X-GitHub-Hook-Installation-Target-Type": "repository"}
    if hook.secret:
        out["X-Hub-Signature"] = "sha1=" + hmac.new(hook.secret.encode(), body, hashlib.sha1).hexdigest()
        out["X-Hub-Signature-256"] = "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    return out


def _commit(forge: Forge, r: Repo, c: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    sig = {"name": c["author_name"], "email": c["author_email"], "username": ""}
    return {**template, "id": c["sha"], "message": c["message"].rstrip("\n"), "timestamp": c["date"],
            "url": f"{forge.url}/{r.path}/commit/{c['sha']}", "author": sig, "committer": dict(sig),
            "added": [], "removed": [], "modified": []}


def push_payload(forge: Forge, r: Repo, ref: str, before: str, after: str, commits: list[dict[str, Any]],
                 head: dict[str, Any] | None, pusher: User) -> dict[str, Any]:
    tag = ref.startswith("refs/tags/")
    data: dict[str, Any] = example("webhook_push_tag_created.json" if tag else "webhook_push_branch.json")
    template = data["head_commit"]
    data = retarget(data, forge, EXAMPLE_REPO, r.path)
    created, deleted = before == gitops.ZERO_SHA, after == gitops.ZERO_SHA
    data.update(ref=ref, before=before, after=after, created=created, deleted=deleted, forced=False, base_ref=None,
                compare=f"{forge.url}/{r.path}/" + (f"compare/{ref.rsplit('/', 1)[-1]}" if created
                                                    else f"compare/{before[:12]}...{after[:12]}"),
                # GitHub lists the pushed commits oldest first.
                commits=[_commit(forge, r, c, template) for c in reversed(commits)],
                head_commit=_commit(forge, r, head, template) if head else None,
                repository=repo_json(forge, r, template=data["repository"]),
                pusher={"name": pusher.login, "email": pusher.email},
                sender=_owner(forge, pusher, data["sender"]))
    data.pop("installation", None)
    return data


def ping_payload(forge: Forge, r: Repo, hook: Hook, sender: User) -> dict[str, Any]:
    data: dict[str, Any] = retarget(example("webhook_ping.json"), forge, EXAMPLE_REPO, r.path)
    shown = hook_json(forge, r, hook)
    data.update(hook_id=hook.id, hook={**data["hook"], **{k: v for k, v in shown.items() if k in data["hook"]}},
                repository=repo_json(forge, r, template=data["repository"]),
                sender=_owner(forge, sender, data["sender"]))
    return data


def pull_request_payload(forge: Forge, base: Repo, pr: PullRequest, action: str) -> dict[str, Any]:
    data: dict[str, Any] = example("webhook_pull_request_opened.json" if action == "opened"
                                   else "webhook_pull_request_synchronize.json")
    data = retarget(data, forge, EXAMPLE_REPO, base.path)
    head_repo, author = forge.repos[pr.head_repo], forge.users[pr.author]
    p = data["pull_request"]
    html = f"{forge.url}/{base.path}/pull/{pr.number}"
    p.update(id=pr.id, number=pr.number, title=pr.title, state=pr.state, html_url=html,
             url=f"{forge.url}/api/v3/repos/{base.path}/pulls/{pr.number}", user=_owner(forge, author, p["user"]),
             statuses_url=f"{forge.url}/api/v3/repos/{base.path}/statuses/{pr.head_sha}")
    for side, repo_, branch, sha in (("head", head_repo, pr.head_branch, pr.head_sha),
                                     ("base", base, pr.base_branch, pr.base_sha)):
        owner = forge.users[repo_.owner]
        p[side].update(label=f"{owner.login}:{branch}", ref=branch, sha=sha, user=_owner(forge, owner, p[side]["user"]),
                       repo=repo_json(forge, repo_, template=p[side]["repo"]))
    data.update(action=PR_ACTIONS[action], number=pr.number, repository=repo_json(forge, base, template=data["repository"]),
                sender=_owner(forge, author, data["sender"]))
    if action != "opened":
        data["after"] = pr.head_sha
        data.pop("before", None)  # the head before the push: not kept by the emulator
    data.pop("installation", None)
    return data
