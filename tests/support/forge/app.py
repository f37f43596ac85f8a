"""The emulator's aiohttp app: Gitea's REST API v1 (the calls agola makes), its OAuth2 provider,
and smart HTTP git (``git http-backend``), sending webhooks after every push that changed a ref.

The OAuth2 "browser session" is HTTP Basic on ``/login/oauth/authorize`` (a test follows the
redirects programmatically with the user's login and password): no login form to fill.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from agola.services.gitserver.cgi import run_http_backend
from tests.support.forge import gitops, shapes
from tests.support.forge.hooks import HOOKS_KEY, HookSender, open_pulls, push_events
from tests.support.forge.model import Forge, Hook, Key, Repo, Status, User

FORGE_KEY = web.AppKey("forge", Forge)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What Gitea's API does with "pull_request" in a hook's events (routers/api/v1/utils/hook.go).
PR_SUB_EVENTS = ("pull_request", "pull_request_assign", "pull_request_label", "pull_request_milestone",
                 "pull_request_comment", "pull_request_review_approved", "pull_request_review_rejected",
                 "pull_request_review_comment", "pull_request_sync", "pull_request_review_request")
STATES = ("pending", "success", "error", "failure", "warning")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _forge(request: web.Request) -> Forge:
    return request.app[FORGE_KEY]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _basic(request: web.Request) -> tuple[str, str] | None:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("basic "):
        return None
    try:
        login, _, password = base64.b64decode(auth[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return login, password


def current_user(request: web.Request) -> User | None:
    forge = _forge(request)
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("token", "bearer"):
        return forge.user_for_token(value.strip())
    if basic := _basic(request):
        # Gitea accepts a password, or a token given as the password.
        return forge.check_password(*basic) or forge.user_for_token(basic[1])
    return None


def _require_user(request: web.Request) -> User:
    user = current_user(request)
    if user is None:
        raise ApiError(401, "token is required")
    return user


def _repo(request: web.Request) -> Repo:
    forge = _forge(request)
    path = f"{request.match_info['owner']}/{request.match_info['repo']}"
    repo = forge.repos.get(path)
    if repo is None:
        raise ApiError(404, "The target couldn't be found.")
    return repo


def _admin_repo(request: web.Request) -> tuple[User, Repo]:
    user = _require_user(request)
    repo = _repo(request)
    if repo.owner != user.login:
        raise ApiError(403, "user should be an owner or a collaborator with admin write of a repository")
    return user, repo


ErrorBody = Callable[[Forge, str, int], dict[str, Any]]


def api(name: str, fn: Handler, error: ErrorBody = shapes.error) -> Handler:
    """Fault injection (``forge.failures[name]`` or ``["*"]``) and the dialect's error bodies
    (``error(forge, message, status)``; Gitea's by default)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        forge = _forge(request)
        status = forge.failures.get(name) or forge.failures.get("*")
        if status:
            return _json(error(forge, f"injected failure of {name}", status), status)
        try:
            return await fn(request)
        except ApiError as exc:
            return _json(error(forge, exc.message, exc.status), exc.status)

    return handler


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, "invalid JSON body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "expected a JSON object")
    return data


# ----------------------------------------------------------------------------------- API v1


async def version(request: web.Request) -> web.Response:
    return _json({"version": "1.21.0"})


async def get_user(request: web.Request) -> web.Response:
    return _json(shapes.user(_forge(request), _require_user(request)))


async def user_repos(request: web.Request) -> web.Response:
    forge = _forge(request)
    user = _require_user(request)
    limit = max(1, min(int(request.query.get("limit") or 30), 50))
    page = max(1, int(request.query.get("page") or 1))
    mine = sorted((r for r in forge.repos.values() if r.owner == user.login), key=lambda r: r.id)
    chunk = mine[(page - 1) * limit: page * limit]
    return _json([shapes.repo(forge, r, user) for r in chunk])


async def get_repo(request: web.Request) -> web.Response:
    return _json(shapes.repo(_forge(request), _repo(request), current_user(request)))


def _basic_self(request: web.Request) -> User:
    basic = _basic(request)
    forge = _forge(request)
    user = forge.check_password(*basic) if basic else None
    if user is None or user.login != request.match_info["user"]:
        raise ApiError(401, "auth required: username and password (HTTP Basic)")
    return user


async def list_tokens(request: web.Request) -> web.Response:
    user = _basic_self(request)
    forge = _forge(request)
    mine = [t for t in forge.tokens.values() if t.login == user.login and t.name]
    return _json([{"id": i + 1, "name": t.name, "sha1": "", "token_last_eight": t.value[-8:],
                   "scopes": list(t.scopes)} for i, t in enumerate(mine)])


async def create_token(request: web.Request) -> web.Response:
    user = _basic_self(request)
    forge = _forge(request)
    body = await _body(request)
    name = str(body.get("name") or "")
    if not name:
        raise ApiError(422, "name is required")
    if any(t.login == user.login and t.name == name for t in forge.tokens.values()):
        raise ApiError(422, "access token name has been used already")
    token = forge.new_token(user.login, name, tuple(body.get("scopes") or ()))
    return _json({"id": forge.next_id(), "name": name, "sha1": token.value, "token_last_eight": token.value[-8:],
                  "scopes": list(token.scopes)}, 201)


async def delete_token(request: web.Request) -> web.Response:
    user = _basic_self(request)
    forge = _forge(request)
    with forge.lock:
        found = [v for v, t in forge.tokens.items() if t.login == user.login and t.name == request.match_info["name"]]
        if not found:
            raise ApiError(404, "The target couldn't be found.")
        for v in found:
            del forge.tokens[v]
    return web.Response(status=204)


async def list_keys(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    return _json([shapes.key(_forge(request), repo, k) for k in repo.keys.values()])


def add_key(forge: Forge, repo: Repo, title: str, text: str, read_only: bool, *, status: int = 422,
            invalid: str = "Invalid key content", taken: str = "A key with the same content already exists") -> Key:
    """A deploy key added to a repository (the sshd lets it in), or ``ApiError(status, ...)``."""
    text = text.strip()
    if not text.startswith(("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-")):
        raise ApiError(status, invalid)
    if any(k.key.split()[:2] == text.split()[:2] for k in repo.keys.values()):
        raise ApiError(status, taken)
    key = Key(forge.next_id(), title, text, read_only)
    with forge.lock:
        repo.keys[key.id] = key
    forge.on_keys_changed()
    return key


def remove_key(forge: Forge, repo: Repo, key_id: int, not_found: str = "The target couldn't be found.") -> None:
    with forge.lock:
        if repo.keys.pop(key_id, None) is None:
            raise ApiError(404, not_found)
    forge.on_keys_changed()


async def create_key(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    forge = _forge(request)
    body = await _body(request)
    key = add_key(forge, repo, str(body.get("title") or ""), str(body.get("key") or ""), bool(body.get("read_only", False)))
    return _json(shapes.key(forge, repo, key), 201)


async def delete_key(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    remove_key(_forge(request), repo, int(request.match_info["id"]))
    return web.Response(status=204)


async def list_hooks(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    return _json([shapes.hook(h) for h in repo.hooks.values()])


async def create_hook(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    forge = _forge(request)
    body = await _body(request)
    config = body.get("config") or {}
    if body.get("type") not in ("gitea", "gogs", "slack", "discord") or not config.get("url"):
        raise ApiError(422, "Invalid hook type or missing config.url")
    events: list[str] = []
    for event in body.get("events") or ["push"]:
        events.extend(PR_SUB_EVENTS if event == "pull_request" else [str(event)])
    hook = Hook(forge.next_id(), str(config["url"]), str(config.get("secret") or ""), tuple(events),
                type=str(body["type"]), content_type=str(config.get("content_type") or "json"),
                branch_filter=str(body.get("branch_filter") or ""), active=bool(body.get("active", False)))
    with forge.lock:
        repo.hooks[hook.id] = hook
    return _json(shapes.hook(hook), 201)


async def delete_hook(request: web.Request) -> web.Response:
    _, repo = _admin_repo(request)
    forge = _forge(request)
    with forge.lock:
        if repo.hooks.pop(int(request.match_info["id"]), None) is None:
            raise ApiError(404, "The target couldn't be found.")
    return web.Response(status=204)


async def raw_file(request: web.Request) -> web.Response:
    repo = _repo(request)
    ref = request.query.get("ref") or repo.default_branch
    data = await asyncio.to_thread(gitops.read_file, repo.git_dir, ref, request.match_info["path"])
    if data is None:
        raise ApiError(404, "The target couldn't be found.")
    return web.Response(body=data, content_type="application/octet-stream")


async def git_refs(request: web.Request) -> web.Response:
    repo = _repo(request)
    forge = _forge(request)
    prefix = "refs/" + request.match_info["ref"]
    found = {n: s for n, s in (await asyncio.to_thread(gitops.refs, repo.git_dir)).items()
             if n == prefix or n.startswith(prefix.rstrip("/") + "/")}
    if not found:
        raise ApiError(404, "The target couldn't be found.")
    api_base = f"{forge.url}/api/v1/repos/{repo.path}/git"
    out = []
    for name, sha in sorted(found.items()):
        kind = await asyncio.to_thread(gitops.object_type, repo.git_dir, sha)
        out.append({"ref": name, "url": f"{api_base}/{name}",
                    "object": {"type": kind, "sha": sha, "url": f"{api_base}/{kind}s/{sha}"}})
    return _json(out)


async def git_tag(request: web.Request) -> web.Response:
    repo = _repo(request)
    sha = request.match_info["sha"]
    if await asyncio.to_thread(gitops.object_type, repo.git_dir, sha) != "tag":
        raise ApiError(404, "The target couldn't be found.")
    target = await asyncio.to_thread(gitops.peel, repo.git_dir, sha)
    return _json({"tag": "", "sha": sha, "url": "", "message": "", "tagger": None,
                  "object": {"type": "commit", "sha": target, "url": ""}, "verification": None})


async def git_commit(request: web.Request) -> web.Response:
    repo = _repo(request)
    forge = _forge(request)
    try:
        c = await asyncio.to_thread(gitops.commit, repo.git_dir, request.match_info["sha"])
    except RuntimeError:
        raise ApiError(404, "The target couldn't be found.") from None
    url = f"{forge.url}/api/v1/repos/{repo.path}/git/commits/{c['sha']}"
    sig = {"name": c["author_name"], "email": c["author_email"], "date": c["date"]}
    return _json({"url": url, "sha": c["sha"], "html_url": f"{forge.url}/{repo.path}/commit/{c['sha']}",
                  "commit": {"url": url, "author": sig, "committer": sig, "message": c["message"],
                             "tree": {"url": "", "sha": ""}},
                  "author": None, "committer": None, "parents": []})


async def create_status(request: web.Request) -> web.Response:
    user, repo = _admin_repo(request)
    forge = _forge(request)
    body = await _body(request)
    state = str(body.get("state") or "")
    if state not in STATES:
        raise ApiError(422, f"invalid state {state!r}")
    status = Status(forge.next_id(), request.match_info["sha"], state, str(body.get("context") or ""),
                    str(body.get("description") or ""), str(body.get("target_url") or ""), user.login)
    with forge.lock:
        repo.statuses.append(status)
    return _json(shapes.status(forge, repo, status), 201)


async def list_statuses(request: web.Request) -> web.Response:
    repo = _repo(request)
    forge = _forge(request)
    sha = request.match_info["sha"]
    return _json([shapes.status(forge, repo, s) for s in reversed(repo.statuses) if s.sha == sha])


# ----------------------------------------------------------------------------------- OAuth2


async def authorize(request: web.Request) -> web.Response:
    forge = _forge(request)
    q = request.query
    app = forge.apps.get(q.get("client_id", ""))
    if app is None or q.get("redirect_uri") != app.redirect_uri or q.get("response_type") != "code":
        return web.Response(status=400, text="invalid client_id, redirect_uri or response_type")
    basic = _basic(request)
    user = forge.check_password(*basic) if basic else None
    if user is None:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="gitea"'}, text="sign in")
    code = secrets.token_hex(16)
    with forge.lock:
        forge.codes[code] = (app.client_id, user.login, app.redirect_uri)
    query = urlencode({"code": code, "state": q.get("state", "")})
    raise web.HTTPFound(f"{app.redirect_uri}?{query}")


def _oauth_error(error: str, description: str) -> web.Response:
    return _json({"error": error, "error_description": description}, 400)


async def access_token(request: web.Request) -> web.Response:
    forge = _forge(request)
    form = await request.post()
    client_id, client_secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    if basic := _basic(request):
        client_id, client_secret = basic
    app = forge.apps.get(client_id)
    if app is None or not secrets.compare_digest(app.client_secret, client_secret):
        return _oauth_error("unauthorized_client", "invalid client credentials")
    grant = form.get("grant_type")
    with forge.lock:
        if grant == "authorization_code":
            entry = forge.codes.pop(str(form.get("code", "")), None)
            if entry is None or entry[0] != client_id or entry[2] != form.get("redirect_uri"):
                return _oauth_error("invalid_grant", "unknown or used code, or wrong redirect_uri")
            login = entry[1]
        elif grant == "refresh_token":
            login_or_none = forge.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if login_or_none is None:
                return _oauth_error("invalid_grant", "unknown or used refresh token")
            login = login_or_none
        else:
            return _oauth_error("unsupported_grant_type", f"grant_type {grant!r}")
        token = forge.new_token(login, lifetime=forge.oauth2_token_lifetime)
        refresh = secrets.token_hex(20)
        forge.refresh_tokens[refresh] = login
    return _json({"access_token": token.value, "token_type": "bearer",
                  "expires_in": forge.oauth2_token_lifetime, "refresh_token": refresh})


# ------------------------------------------------------------------------------ smart HTTP git


async def git_http(request: web.Request) -> web.StreamResponse:
    forge = _forge(request)
    owner, name, tail = request.match_info["owner"], request.match_info["repo"], request.match_info["tail"]
    repo = forge.repos.get(f"{owner}/{name.removesuffix('.git')}")
    if repo is None or not name.endswith(".git"):
        raise web.HTTPNotFound()
    push = tail == "git-receive-pack" or request.query.get("service") == "git-receive-pack"
    pusher = current_user(request)
    if push and (pusher is None or pusher.login != repo.owner):
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="gitea"'}, text="push denied")
    if tail != "git-receive-pack":
        return await run_http_backend(request, forge.repos_root, f"/{repo.path}.git/{tail}")
    assert pusher is not None
    before = await asyncio.to_thread(gitops.refs, repo.git_dir)
    pulls = open_pulls(forge)
    response = await run_http_backend(request, forge.repos_root, f"/{repo.path}.git/{tail}")
    after = await asyncio.to_thread(gitops.refs, repo.git_dir)
    await request.app[HOOKS_KEY].send_all(await asyncio.to_thread(push_events, forge, repo, before, after, pusher, pulls))
    return response


def build_app(forge: Forge) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FORGE_KEY] = forge
    sender = HookSender(forge)
    app[HOOKS_KEY] = sender

    async def hooks_ctx(app: web.Application) -> Any:
        app[HOOKS_KEY].session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        yield
        await app[HOOKS_KEY].close()

    app.cleanup_ctx.append(hooks_ctx)
    r = app.router
    v1 = "/api/v1"
    repo = v1 + "/repos/{owner}/{repo}"
    routes: list[tuple[str, str, str, Handler]] = [
        ("GET", v1 + "/version", "version", version),
        ("GET", v1 + "/user", "get_user", get_user),
        ("GET", v1 + "/user/repos", "user_repos", user_repos),
        ("GET", v1 + "/users/{user}/tokens", "list_tokens", list_tokens),
        ("POST", v1 + "/users/{user}/tokens", "create_token", create_token),
        ("DELETE", v1 + "/users/{user}/tokens/{name}", "delete_token", delete_token),
        ("GET", repo, "get_repo", get_repo),
        ("GET", repo + "/keys", "list_keys", list_keys),
        ("POST", repo + "/keys", "create_key", create_key),
        ("DELETE", repo + "/keys/{id:\\d+}", "delete_key", delete_key),
        ("GET", repo + "/hooks", "list_hooks", list_hooks),
        ("POST", repo + "/hooks", "create_hook", create_hook),
        ("DELETE", repo + "/hooks/{id:\\d+}", "delete_hook", delete_hook),
        ("GET", repo + "/raw/{path:.+}", "raw_file", raw_file),
        ("GET", repo + "/git/refs/{ref:.+}", "git_refs", git_refs),
        ("GET", repo + "/git/tags/{sha}", "git_tag", git_tag),
        ("GET", repo + "/git/commits/{sha}", "git_commit", git_commit),
        ("POST", repo + "/statuses/{sha}", "create_status", create_status),
        ("GET", repo + "/statuses/{sha}", "list_statuses", list_statuses),
        ("GET", "/login/oauth/authorize", "authorize", authorize),
        ("POST", "/login/oauth/access_token", "access_token", access_token),
    ]
    oauth = routes[-2:]
    if forge.dialect == "github":
        from tests.support.forge import github_dialect

        wrapped = [*github_dialect.routes(), *((m, p, n, api(n, fn)) for m, p, n, fn in oauth)]
    elif forge.dialect == "gitlab":
        from tests.support.forge import gitlab_dialect

        wrapped = [*gitlab_dialect.routes(), ("GET", "/oauth/authorize", "authorize", api("authorize", authorize)),
                   ("POST", "/oauth/token", "access_token", api("access_token", access_token))]
    else:
        wrapped = [(m, p, n, api(n, fn)) for m, p, n, fn in routes]
    for method, path, _, handler in wrapped:
        r.add_route(method, path, handler)
    r.add_route("*", "/{owner}/{repo}/{tail:.*}", git_http)
    return app
