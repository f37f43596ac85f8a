"""A small fake of GitLab's REST API v4 and OAuth2 provider on 127.0.0.1, for the GitLab driver's
tests. Answers start from the reference pack's examples (``examples/gitlab/api_*.json``) with the
test's ids, paths and URLs filled in.

Projects are found by id or by their URL-encoded path, read from the raw request path as GitLab
does (an unencoded ``group/app`` does not name a project). Lists are paginated with
``X-Next-Page`` (``page_size`` items a page). OAuth2 access tokens expire (``expire(token)``) and
a refresh replaces both tokens. ``limit(n, ...)`` makes the next ``n`` API calls answer 429.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import attrs
from aiohttp import web

from tests.support.services import free_port

PACK = Path(__file__).parent / "pack" / "gitlab"
LOGIN = web.RequestKey("login", str)
STATES = ("pending", "running", "success", "failed", "canceled")


def example(name: str) -> Any:
    return json.loads((PACK / name).read_text())


@attrs.define
class FakeProject:
    id: int
    path: str  # namespace/name, perhaps nested
    default_branch: str = "main"
    access_level: int = 40
    keys: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    hooks: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    statuses: list[dict[str, Any]] = attrs.field(factory=list)
    files: dict[str, dict[str, bytes]] = attrs.field(factory=dict)  # sha -> path -> bytes
    branches: dict[str, str] = attrs.field(factory=dict)  # name -> sha
    tags: dict[str, str] = attrs.field(factory=dict)  # name -> commit sha
    messages: dict[str, str] = attrs.field(factory=dict)  # sha -> message


@attrs.define
class Call:
    method: str
    raw_path: str
    headers: dict[str, str]


class FakeGitLab:
    def __init__(self, page_size: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.page_size = page_size
        self.tokens: dict[str, str] = {}  # access token -> login
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # refresh token -> (login, access token)
        self.users: dict[str, int] = {}
        self.projects: dict[str, FakeProject] = {}
        self.apps: dict[str, tuple[str, str]] = {}  # client_id -> (secret, redirect_uri)
        self.codes: dict[str, str] = {}
        # Who is signed in in the browser that follows an authorize URL.
        self.browser_user = ""
        self.calls: list[Call] = []
        self.limits: list[tuple[int, dict[str, str]]] = []
        self.refreshes = 0
        self._next_id = 500
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------------- arrange

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_user(self, login: str) -> str:
        self.users[login] = self.next_id()
        token = secrets.token_hex(32)
        self.tokens[token] = login
        return token

    def add_project(self, path: str, *, access_level: int = 40) -> FakeProject:
        project = FakeProject(self.next_id(), path, access_level=access_level)
        self.projects[path] = project
        return project

    def add_app(self, redirect_uri: str) -> tuple[str, str]:
        client_id, secret = secrets.token_hex(16), "gloas-" + secrets.token_hex(16)
        self.apps[client_id] = (secret, redirect_uri)
        return client_id, secret

    def authorize(self, login: str) -> str:
        code = secrets.token_hex(10)
        self.codes[code] = login
        return code

    def expire(self, token: str) -> None:
        self.tokens.pop(token, None)

    def limit(self, count: int, retry_after: int) -> None:
        headers = {"Retry-After": str(retry_after), "RateLimit-Remaining": "0",
                   "RateLimit-Reset": str(int(time.time()) + retry_after)}
        self.limits.extend([(429, headers)] * count)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeGitLab:
        app = web.Application()
        app.router.add_get("/oauth/authorize", self._authorize)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_route("*", "/api/v4/{rest:.*}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ----------------------------------------------------------------------------------- OAuth2

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        app = self.apps.get(q.get("client_id", ""))
        if app is None or app[1] != q.get("redirect_uri") or not self.browser_user or q.get("scope") != "api":
            return web.Response(status=400, text="bad authorize request")
        code = self.authorize(self.browser_user)
        raise web.HTTPFound(f"{app[1]}?{urlencode({'code': code, 'state': q.get('state', '')})}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        app = self.apps.get(client_id)
        if app is None or app[0] != form.get("client_secret"):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            login = self.codes.pop(str(form.get("code", "")), None)
            if login is None or form.get("redirect_uri") != app[1]:
                return web.json_response({"error": "invalid_grant"}, status=400)
        elif grant == "refresh_token":
            old = self.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if old is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            login = old[0]
            self.tokens.pop(old[1], None)  # a refresh revokes the old access token too
            self.refreshes += 1
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        access, refresh = secrets.token_hex(32), secrets.token_hex(32)
        self.tokens[access] = login
        self.refresh_tokens[refresh] = (login, access)
        answer = {**example("oauth_token_response.json"), "access_token": access, "refresh_token": refresh,
                  "created_at": int(time.time())}
        return web.json_response(answer)

    # -------------------------------------------------------------------------------------- API

    async def _api(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.method, request.raw_path, dict(request.headers)))
        if self.limits:
            status, headers = self.limits.pop(0)
            return web.json_response({"message": "Retry later"}, status=status, headers=headers)
        auth = request.headers.get("Authorization", "")
        login = self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if login is None:
            return web.json_response({"message": "401 Unauthorized"}, status=401)
        request[LOGIN] = login
        raw = request.raw_path.split("?", 1)[0].removeprefix("/api/v4/")
        parts = raw.split("/")
        if parts == ["user"]:
            data = example("api_user_GET.json")
            data.update(id=self.users[login], username=login, email=f"{login}@example.com")
            return web.json_response(data)
        if parts == ["projects"] and request.method == "GET":
            level = int(request.query.get("min_access_level", "0"))
            return self._page(request, [self.project_json(p) for p in self.projects.values() if p.access_level >= level])
        if len(parts) < 2 or parts[0] != "projects":
            return _not_found("404 Not Found")
        key = unquote(parts[1])
        project = self.projects.get(key) or next((p for p in self.projects.values() if str(p.id) == key), None)
        if project is None:
            return _not_found("404 Project Not Found")
        return await self._project_call(request, project, [unquote(p) for p in parts[2:]])

    async def _project_call(self, request: web.Request, p: FakeProject, rest: list[str]) -> web.Response:
        method = request.method
        if not rest:
            return web.json_response(self.project_json(p))
        head, tail = rest[0], rest[1:]
        if head in ("deploy_keys", "hooks"):
            items = p.keys if head == "deploy_keys" else p.hooks
            if method == "GET" and not tail:
                return self._page(request, list(items.values()))
            if method == "DELETE" and len(tail) == 1:
                return web.Response(status=204) if items.pop(int(tail[0]), None) else _not_found("404 Not Found")
            if method == "POST" and not tail:
                body = await request.json()
                item = copy.deepcopy(example("api_deploy_key_POST_create_response.json" if head == "deploy_keys"
                                             else "api_hook_POST_create_response.json"))
                item.update(body, id=self.next_id())
                if head == "hooks":
                    # GitLab's defaults for the events not asked for: push only.
                    item.update({k: k == "push_events" for k in item if k.endswith("_events") and k not in body})
                    item["project_id"] = p.id
                    stored = dict(item)
                    item.pop("token", None)  # GitLab never shows the token back
                    items[item["id"]] = stored
                else:
                    item["can_push"] = bool(body.get("can_push", False))
                    items[item["id"]] = item
                return web.json_response(item, status=201)
        if head == "repository" and method == "GET" and len(tail) == 2:
            return self._repository(request, p, tail[0], tail[1])
        if head == "statuses" and method == "POST" and len(tail) == 1:
            return await self._add_status(request, p, tail[0])
        return _not_found("404 Not Found")

    def _repository(self, request: web.Request, p: FakeProject, kind: str, name: str) -> web.Response:
        if kind == "files":
            content = p.files.get(request.query.get("ref", ""), {}).get(name)
            if content is None:
                return _not_found("404 File Not Found")
            data = example("api_repository_file_GET.json")
            data.update(file_name=name.rsplit("/", 1)[-1], file_path=name, size=len(content),
                        content=base64.b64encode(content).decode(), ref=request.query["ref"])
            return web.json_response(data)
        if kind in ("branches", "tags"):
            sha = (p.branches if kind == "branches" else p.tags).get(name)
            if sha is None:
                return _not_found(f"404 {'Branch' if kind == 'branches' else 'Tag'} Not Found")
            data = example("api_branch_GET.json" if kind == "branches" else "api_tag_GET.json")
            data["name"] = name
            data["commit"] = {**data["commit"], "id": sha, "short_id": sha[:8], "message": p.messages.get(sha, "")}
            return web.json_response(data)
        if kind == "commits" and name in p.messages:
            data = example("api_commit_GET.json")
            data.update(id=name, short_id=name[:8], message=p.messages[name])
            return web.json_response(data)
        return _not_found("404 Commit Not Found")

    async def _add_status(self, request: web.Request, p: FakeProject, sha: str) -> web.Response:
        body = await request.json()
        state, name = body.get("state"), body.get("name") or body.get("context") or "default"
        if state not in STATES:
            return web.json_response({"message": "state does not have a valid value"}, status=400)
        last = next((s for s in reversed(p.statuses) if s["sha"] == sha and s["name"] == name), None)
        if last is not None and last["status"] == state:
            return web.json_response({"message": f"Cannot transition status via :{state} from :{state}"}, status=400)
        status = example("api_status_POST_create_response.json")
        status.update(id=self.next_id(), sha=sha, name=name, status=state, description=body.get("description"),
                      target_url=body.get("target_url"))
        p.statuses.append(status)
        return web.json_response(status, status=201)

    def _page(self, request: web.Request, items: list[Any]) -> web.Response:
        size = min(self.page_size, int(request.query.get("per_page", "20")))
        page = int(request.query.get("page", "1"))
        pages = max(1, (len(items) + size - 1) // size)
        headers = {"X-Page": str(page), "X-Per-Page": str(size), "X-Total": str(len(items)),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        return web.json_response(items[(page - 1) * size:page * size], headers=headers)

    def project_json(self, p: FakeProject) -> dict[str, Any]:
        data: dict[str, Any] = example("api_project_GET.json")
        namespace, _, name = p.path.rpartition("/")
        data.update(id=p.id, name=name, path=name, path_with_namespace=p.path, default_branch=p.default_branch,
                    web_url=f"{self.url}/{p.path}", http_url_to_repo=f"{self.url}/{p.path}.git",
                    ssh_url_to_repo=f"git@127.0.0.1:{p.path}.git", name_with_namespace=p.path.replace("/", " / "))
        data["namespace"] = {**data["namespace"], "full_path": namespace}
        return data


def _not_found(message: str) -> web.Response:
    return web.json_response({"message": message}, status=404)
