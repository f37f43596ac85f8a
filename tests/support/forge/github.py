"""A small fake of GitHub's REST API v3 (Enterprise Server layout: ``/api/v3``) and OAuth app
endpoints on 127.0.0.1, for the GitHub driver's tests. Answers start from the reference pack's
examples (``examples/github/api_*.json``) with the test's ids, names and URLs filled in.

State is plain dicts the test arranges and reads back. Lists are paginated with ``Link`` headers
(``page_size`` items a page, GitHub's ``per_page`` honoured up to it). Rate limits: ``limit(n,
...)`` makes the next ``n`` API calls answer as a spent limit; every call is in ``calls``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import attrs
from aiohttp import web

from tests.support.services import free_port

PACK = Path(__file__).parent / "pack" / "github"
LOGIN = web.RequestKey("login", str)


T = TypeVar("T")


def example(name: str) -> Any:
    return json.loads((PACK / name).read_text())


class _Server(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


class InThread:
    """Serves a fake from its own event loop in a thread, for sync tests (the CLI runs its own
    loop): ``with InThread(FakeGitHub()) as fake: ...``."""

    def __init__(self, fake: _Server) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="forge-fake")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def __enter__(self) -> InThread:
        self._thread.start()
        self.run(self.fake.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.fake.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@attrs.define
class FakeRepo:
    id: int
    owner: str
    name: str
    admin: bool = True
    default_branch: str = "main"
    keys: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    hooks: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    statuses: list[dict[str, Any]] = attrs.field(factory=list)
    # sha -> path -> bytes; ref -> sha; annotated tag object sha -> commit sha; sha -> message
    files: dict[str, dict[str, bytes]] = attrs.field(factory=dict)
    refs: dict[str, str] = attrs.field(factory=dict)
    tag_objects: dict[str, str] = attrs.field(factory=dict)
    messages: dict[str, str] = attrs.field(factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@attrs.define
class Call:
    method: str
    path: str
    headers: dict[str, str]


@attrs.define
class Limit:
    count: int
    status: int
    headers: dict[str, str]


class FakeGitHub:
    def __init__(self, page_size: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.page_size = page_size
        self.tokens: dict[str, str] = {}  # token -> login
        self.users: dict[str, int] = {}  # login -> id
        self.repos: dict[str, FakeRepo] = {}
        self.apps: dict[str, str] = {}  # client_id -> secret
        self.codes: dict[str, str] = {}  # code -> login
        # Who is signed in in the browser that follows an authorize URL.
        self.browser_user = ""
        self.calls: list[Call] = []
        self.limits: list[Limit] = []
        self._next_id = 100
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------------- arrange

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_user(self, login: str) -> str:
        """A user and a token for them."""
        self.users[login] = self.next_id()
        token = "gho_" + secrets.token_hex(12)
        self.tokens[token] = login
        return token

    def add_repo(self, owner: str, name: str, *, admin: bool = True) -> FakeRepo:
        repo = FakeRepo(self.next_id(), owner, name, admin=admin)
        self.repos[repo.full_name] = repo
        return repo

    def add_app(self) -> tuple[str, str]:
        client_id, secret = "Iv1." + secrets.token_hex(8), secrets.token_hex(20)
        self.apps[client_id] = secret
        return client_id, secret

    def authorize(self, login: str) -> str:
        """What GitHub does when the user accepts the OAuth app: a code for the callback."""
        code = secrets.token_hex(10)
        self.codes[code] = login
        return code

    def limit(self, count: int, *, retry_after: int = 0, reset_in: int = 0, status: int = 403) -> None:
        """The next ``count`` API calls hit a rate limit (secondary with ``Retry-After``,
        primary with ``X-RateLimit-Remaining: 0`` and the reset time)."""
        headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Used": "5000"}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        if reset_in:
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time()) + reset_in)
        self.limits.append(Limit(count, status, headers))

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeGitHub:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/login/oauth/authorize", self._authorize)
        r.add_post("/login/oauth/access_token", self._token)
        r.add_get("/api/v3/user", self._user)
        r.add_get("/api/v3/user/repos", self._user_repos)
        r.add_get("/api/v3/repos/{owner}/{name}", self._repo)
        r.add_get("/api/v3/repos/{owner}/{name}/keys", self._keys)
        r.add_post("/api/v3/repos/{owner}/{name}/keys", self._add_key)
        r.add_delete("/api/v3/repos/{owner}/{name}/keys/{id}", self._delete_key)
        r.add_get("/api/v3/repos/{owner}/{name}/hooks", self._hooks)
        r.add_post("/api/v3/repos/{owner}/{name}/hooks", self._add_hook)
        r.add_delete("/api/v3/repos/{owner}/{name}/hooks/{id}", self._delete_hook)
        r.add_get("/api/v3/repos/{owner}/{name}/contents/{path:.*}", self._contents)
        r.add_get("/api/v3/repos/{owner}/{name}/git/ref/{ref:.*}", self._ref)
        r.add_get("/api/v3/repos/{owner}/{name}/git/tags/{sha}", self._tag)
        r.add_get("/api/v3/repos/{owner}/{name}/git/commits/{sha}", self._commit)
        r.add_post("/api/v3/repos/{owner}/{name}/statuses/{sha}", self._add_status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/v3/"):
            return await handler(request)
        self.calls.append(Call(request.method, request.path, dict(request.headers)))
        if self.limits:
            lim = self.limits[0]
            lim.count -= 1
            if lim.count <= 0:
                self.limits.pop(0)
            return _error(lim.status, "API rate limit exceeded for user.", lim.headers)
        auth = request.headers.get("Authorization", "")
        login = self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if login is None:
            return _error(401, "Bad credentials")
        request[LOGIN] = login
        return await handler(request)

    def _repo_of(self, request: web.Request) -> FakeRepo:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if repo is None:
            raise _not_found()
        return repo

    def _page(self, request: web.Request, items: list[Any]) -> web.Response:
        size = min(self.page_size, int(request.query.get("per_page", "30")))
        page = int(request.query.get("page", "1"))
        chunk = items[(page - 1) * size:page * size]
        headers = {}
        if page * size < len(items):
            query = {**request.query, "page": str(page + 1)}
            nxt = request.url.with_query(query)
            last = request.url.with_query({**query, "page": str((len(items) + size - 1) // size)})
            headers["Link"] = f'<{nxt}>; rel="next", <{last}>; rel="last"'
        return web.json_response(chunk, headers=headers)

    def repo_json(self, repo: FakeRepo, *, listed: bool = False) -> dict[str, Any]:
        """A repository as ``GET /repos/{owner}/{repo}`` shows it (``full-repository``) or as
        ``GET /user/repos`` lists it (``repository``)."""
        data: dict[str, Any] = example("api_user_repos_GET_list.json")[0] if listed else example("api_repo_GET.json")
        data.update(id=repo.id, name=repo.name, full_name=repo.full_name, default_branch=repo.default_branch,
                    html_url=f"{self.url}/{repo.full_name}", clone_url=f"{self.url}/{repo.full_name}.git",
                    ssh_url=f"git@127.0.0.1:{repo.full_name}.git",
                    permissions={"admin": repo.admin, "push": repo.admin, "pull": True})
        data["owner"] = {**data["owner"], "login": repo.owner}
        # The example is a fork of another repository, without `language` (GitHub sends null).
        data.update(fork=False, language=data.get("language"))
        for key in ("parent", "source"):
            data.pop(key, None)
        return data

    # ------------------------------------------------------------------------------ handlers

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") not in self.apps or not self.browser_user or q.get("response_type") != "code":
            return web.Response(status=400, text="bad authorize request")
        code = self.authorize(self.browser_user)
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        login = self.codes.pop(str(form.get("code", "")), None)
        if self.apps.get(client_id) != secret or not secret:
            answer = {"error": "incorrect_client_credentials"}
        elif login is None:
            answer = {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
        else:
            token = "gho_" + secrets.token_hex(12)
            self.tokens[token] = login
            answer = {**example("oauth_access_token_response.json"), "access_token": token, "scope": "repo"}
        # GitHub answers 200 even for errors; form-encoded unless JSON is asked for.
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(answer)
        return web.Response(text="&".join(f"{k}={v}" for k, v in answer.items()),
                            content_type="application/x-www-form-urlencoded")

    async def _user(self, request: web.Request) -> web.Response:
        login = request[LOGIN]
        data = example("api_user_GET_user.json")
        data.update(login=login, id=self.users[login], email=f"{login}@example.com")
        return web.json_response(data)

    async def _user_repos(self, request: web.Request) -> web.Response:
        return self._page(request, [self.repo_json(r, listed=True) for r in self.repos.values()])

    async def _repo(self, request: web.Request) -> web.Response:
        return web.json_response(self.repo_json(self._repo_of(request)))

    async def _keys(self, request: web.Request) -> web.Response:
        return self._page(request, list(self._repo_of(request).keys.values()))

    async def _add_key(self, request: web.Request) -> web.Response:
        repo, body = self._repo_of(request), await request.json()
        key = copy.deepcopy(example("api_deploy_key_POST_create_response.json"))
        kid = self.next_id()
        key.update(id=kid, key=body["key"], title=body["title"], read_only=bool(body.get("read_only", False)),
                   url=f"{self.url}/api/v3/repos/{repo.full_name}/keys/{kid}", added_by=request[LOGIN])
        repo.keys[kid] = key
        return web.json_response(key, status=201)

    async def _delete_key(self, request: web.Request) -> web.Response:
        if self._repo_of(request).keys.pop(int(request.match_info["id"]), None) is None:
            raise _not_found()
        return web.Response(status=204)

    async def _hooks(self, request: web.Request) -> web.Response:
        hooks = [{**h, "config": {k: v for k, v in h["config"].items() if k != "secret"}}
                 for h in self._repo_of(request).hooks.values()]
        return self._page(request, hooks)

    async def _add_hook(self, request: web.Request) -> web.Response:
        repo, body = self._repo_of(request), await request.json()
        hook = copy.deepcopy(example("api_hook_POST_create_response.json"))
        hid = self.next_id()
        hook.update(id=hid, name=body["name"], events=body["events"], active=body["active"], config=body["config"],
                    url=f"{self.url}/api/v3/repos/{repo.full_name}/hooks/{hid}")
        repo.hooks[hid] = hook
        shown = {**hook, "config": {k: v for k, v in hook["config"].items() if k != "secret"}}
        return web.json_response(shown, status=201)

    async def _delete_hook(self, request: web.Request) -> web.Response:
        if self._repo_of(request).hooks.pop(int(request.match_info["id"]), None) is None:
            raise _not_found()
        return web.Response(status=204)

    async def _contents(self, request: web.Request) -> web.Response:
        repo, path = self._repo_of(request), request.match_info["path"]
        files = repo.files.get(request.query.get("ref", ""), {})
        if path not in files:
            if any(p.startswith(path + "/") for p in files):
                return web.json_response(example("api_contents_GET_directory.json"))
            raise _not_found()
        content = files[path]
        if request.headers.get("Accept") == "application/vnd.github.raw+json":
            return web.Response(body=content, content_type="application/vnd.github.raw")
        data = example("api_contents_GET_file.json")
        big = len(content) > 1024 * 1024
        encoded = base64.b64encode(content).decode()
        data.update(name=path.rsplit("/", 1)[-1], path=path, size=len(content),
                    encoding="none" if big else "base64",
                    content="" if big else "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)))
        return web.json_response(data)

    async def _ref(self, request: web.Request) -> web.Response:
        repo, ref = self._repo_of(request), "refs/" + request.match_info["ref"]
        sha = repo.refs.get(ref)
        if sha is None:
            raise _not_found()
        data = example("api_git_ref_GET.json")
        kind = "tag" if sha in repo.tag_objects else "commit"
        data.update(ref=ref, object={"type": kind, "sha": sha, "url": ""})
        return web.json_response(data)

    async def _tag(self, request: web.Request) -> web.Response:
        repo, sha = self._repo_of(request), request.match_info["sha"]
        if sha not in repo.tag_objects:
            raise _not_found()
        return web.json_response({"sha": sha, "tag": "t", "message": "",
                                  "object": {"type": "commit", "sha": repo.tag_objects[sha], "url": ""}})

    async def _commit(self, request: web.Request) -> web.Response:
        repo, sha = self._repo_of(request), request.match_info["sha"]
        if sha not in repo.messages:
            raise _not_found()
        data = example("api_git_commit_GET.json")
        data.update(sha=sha, message=repo.messages[sha])
        return web.json_response(data)

    async def _add_status(self, request: web.Request) -> web.Response:
        repo, body = self._repo_of(request), await request.json()
        if body.get("state") not in ("error", "failure", "pending", "success"):
            return _error(422, "Validation Failed")
        if len(body.get("description") or "") > 140:
            return _error(422, "Validation Failed")
        status = example("api_status_POST_create_response.json")
        status.update(id=self.next_id(), state=body["state"], description=body.get("description"),
                      target_url=body.get("target_url"), context=body.get("context") or "default",
                      sha=request.match_info["sha"])
        repo.statuses.append(status)
        return web.json_response(status, status=201)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    return web.json_response(body, status=status, headers=headers)


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps(example("api_error_404.json")), content_type="application/json")
