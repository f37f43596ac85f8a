"""The Gitea driver: REST API v1, OAuth2 and webhooks, as the reference calls them
(``reference/forges/README.md`` §1), over one aiohttp session per driver.

Fixes of the reference's quirks (README compatibility notes): an unsigned or wrongly signed
delivery is refused; the pull request id is the PR number (what ``refs/pull/<n>/head`` uses), not
Gitea's global id; a tag run builds the tagged commit, not an annotated tag object; a branch or tag
deletion creates nothing; lists of keys and hooks are read to their last page; a trailing slash of
the API URL never doubles in OAuth2 URLs; password sources create tokens with the scopes agola
needs (Gitea ≥ 1.19 refuses scope-less tokens on the API).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from agola.errors import BadRequest
from agola.forges.base import (
    CommitState,
    DeployKey,
    EventKind,
    ForgeBadRequest,
    ForgeError,
    ForgeNotFound,
    ForgeUnauthorized,
    ForgeUnreachable,
    OAuth2Token,
    RemoteUser,
    RepoInfo,
    TokenSaver,
    Webhook,
    WebhookEvent,
    WebhookRejected,
    forge_error_for_status,
)
from agola.types.configstore import RemoteSource
from agola.util.log import get_logger

log = get_logger(__name__)

FORGE = "gitea"
ZERO_SHA = "0" * 40
# Refresh an OAuth2 access token that expires within this delay (the reference's expireTimeRange).
REFRESH_MARGIN = timedelta(minutes=5)
PAGE_SIZE = 50
HOOK_EVENTS = ("push", "pull_request")
TOKEN_SCOPES = ("write:repository", "read:user")
PR_ACTIONS = ("opened", "reopened", "synchronized")
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


def _repo(path: str) -> str:
    owner, _, name = path.partition("/")
    if not owner or not name or "/" in name:
        raise BadRequest(f"wrong repository path {path!r} (expected owner/name)")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _str(value: Any) -> str:
    return "" if value is None else str(value)


class GiteaDriver:
    forge = FORGE

    def __init__(self, remote_source: RemoteSource, token: OAuth2Token | None = None, *,
                 on_token_refresh: TokenSaver | None = None) -> None:
        self._rs = remote_source
        self._root = remote_source.api_url.rstrip("/")
        self._api = self._root + "/api/v1"
        self._token = token
        self._on_refresh = on_token_refresh
        self._session: aiohttp.ClientSession | None = None
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> GiteaDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=False) if self._rs.skip_verify else None
            self._session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT, connector=connector)
        return self._session

    # ------------------------------------------------------------------------------- transport

    async def _send(self, call: str, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                    json_body: Any = None, data: Any = None, ok: tuple[int, ...] = (200,)) -> tuple[int, bytes]:
        try:
            async with self._http().request(method, url, headers=headers, json=json_body, data=data) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ForgeUnreachable(FORGE, call, f"cannot reach {self._root}: {type(exc).__name__}") from None
        if status not in ok:
            raise forge_error_for_status(FORGE, call, status, _error_message(body))
        return status, body

    async def _auth_headers(self, call: str) -> dict[str, str]:
        if self._token is None or not self._token.access_token:
            raise ForgeUnauthorized(FORGE, call, "no token for this account (link an account first)")
        await self._refresh_if_expiring()
        return {"Authorization": f"token {self._token.access_token}"}

    async def _api_call(self, call: str, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                        json_body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        url = self._api + path + (("?" + urlencode(params)) if params else "")
        _, body = await self._send(call, method, url, headers=await self._auth_headers(call),
                                   json_body=json_body, ok=ok)
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise ForgeError(FORGE, call, "the answer is not JSON") from None

    async def _pages(self, call: str, path: str, extra: Mapping[str, Any] | None = None) -> list[Any]:
        out: list[Any] = []
        page = 1
        while True:
            items = await self._api_call(call, "GET", path, params={**(extra or {}), "limit": PAGE_SIZE, "page": page})
            if not isinstance(items, list) or not items:
                return out
            out.extend(items)
            if len(items) < PAGE_SIZE:
                return out
            page += 1

    # ---------------------------------------------------------------------------------- OAuth2

    def oauth2_authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self._rs.oauth2_client_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": "", "state": state})
        return f"{self._root}/login/oauth/authorize?{query}"

    async def _token_request(self, call: str, form: dict[str, str]) -> OAuth2Token:
        form = {**form, "client_id": self._rs.oauth2_client_id, "client_secret": self._rs.oauth2_client_secret}
        _, body = await self._send(call, "POST", f"{self._root}/login/oauth/access_token",
                                   headers={"Accept": "application/json"}, data=form, ok=(200, 201, 400, 401))
        try:
            data = json.loads(body)
        except ValueError:
            raise ForgeError(FORGE, call, "the token answer is not JSON") from None
        if not isinstance(data, dict) or data.get("error") or not data.get("access_token"):
            err = data.get("error_description") or data.get("error") if isinstance(data, dict) else ""
            raise ForgeUnauthorized(FORGE, call, f"no access token: {err or 'empty answer'}")
        expires_in = data.get("expires_in")
        expires_at = None
        if expires_in not in (None, "", 0, "0"):
            try:
                expires_at = datetime.now(UTC) + timedelta(seconds=int(expires_in))
            except (TypeError, ValueError):
                expires_at = None
        return OAuth2Token(access_token=str(data["access_token"]),
                           refresh_token=_str(data.get("refresh_token")) or form.get("refresh_token", ""),
                           expires_at=expires_at)

    async def oauth2_exchange_code(self, code: str, redirect_uri: str) -> OAuth2Token:
        return await self._token_request("oauth2_exchange_code", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    async def oauth2_refresh(self, refresh_token: str) -> OAuth2Token:
        return await self._token_request("oauth2_refresh", {"grant_type": "refresh_token",
                                                            "refresh_token": refresh_token})

    async def _refresh_if_expiring(self) -> None:
        async with self._refresh_lock:
            token = self._token
            if token is None or token.expires_at is None or not token.refresh_token:
                return
            if token.expires_at - datetime.now(UTC) > REFRESH_MARGIN:
                return
            new = await self.oauth2_refresh(token.refresh_token)
            self._token = new
            log.info("oauth2 token refreshed", forge=FORGE, remote_source=self._rs.name)
            if self._on_refresh is not None:
                await self._on_refresh(new)

    async def create_access_token(self, login: str, password: str, token_name: str) -> str:
        call = "create_access_token"
        basic = base64.b64encode(f"{login}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        base = f"{self._api}/users/{quote(login, safe='')}/tokens"
        _, body = await self._send(call, "GET", f"{base}?limit={PAGE_SIZE}&page=1", headers=headers)
        try:
            existing = json.loads(body) or []
        except ValueError:
            existing = []
        if any(isinstance(t, dict) and t.get("name") == token_name for t in existing):
            # A token's value is shown once: an existing one can't be reused, replace it.
            await self._send(call, "DELETE", f"{base}/{quote(token_name, safe='')}", headers=headers, ok=(204,))
        _, body = await self._send(call, "POST", base, headers=headers, ok=(201,),
                                   json_body={"name": token_name, "scopes": list(TOKEN_SCOPES)})
        data = json.loads(body)
        token = _str(data.get("sha1") if isinstance(data, dict) else "")
        if not token:
            raise ForgeError(FORGE, call, "the answer carries no token")
        return token

    # ------------------------------------------------------------------------------ users, repos

    async def current_user(self) -> RemoteUser:
        data = await self._api_call("current_user", "GET", "/user")
        if not isinstance(data, dict) or not data.get("id"):
            raise ForgeError(FORGE, "current_user", "the answer has no user id")
        return RemoteUser(id=_str(data.get("id")), login=_str(data.get("login") or data.get("username")),
                          email=_str(data.get("email")), avatar_url=_str(data.get("avatar_url")))

    async def list_user_repos(self) -> list[RepoInfo]:
        repos = await self._pages("list_user_repos", "/user/repos")
        return [_repo_info(r) for r in repos if isinstance(r, dict) and (r.get("permissions") or {}).get("admin")]

    async def repo_info(self, repo_path: str) -> RepoInfo:
        data = await self._api_call("repo_info", "GET", _repo(repo_path))
        if not isinstance(data, dict):
            raise ForgeError(FORGE, "repo_info", "the answer is not a repository")
        return _repo_info(data)

    # --------------------------------------------------------------------------- keys and hooks

    async def _deploy_keys(self, call: str, repo_path: str) -> list[dict[str, Any]]:
        return [k for k in await self._pages(call, _repo(repo_path) + "/keys") if isinstance(k, dict)]

    async def create_deploy_key(self, repo_path: str, title: str, public_key: str) -> DeployKey:
        call = "create_deploy_key"
        for key in await self._deploy_keys(call, repo_path):
            if key.get("title") != title:
                continue
            if _same_key(_str(key.get("key")), public_key):
                return _deploy_key(key)
            await self._api_call(call, "DELETE", f"{_repo(repo_path)}/keys/{key.get('id')}", ok=(204,))
        data = await self._api_call(call, "POST", _repo(repo_path) + "/keys", ok=(201,),
                                    json_body={"title": title, "key": public_key, "read_only": True})
        return _deploy_key(data)

    async def delete_deploy_key(self, repo_path: str, title: str) -> None:
        call = "delete_deploy_key"
        for key in await self._deploy_keys(call, repo_path):
            if key.get("title") == title:
                await self._api_call(call, "DELETE", f"{_repo(repo_path)}/keys/{key.get('id')}", ok=(204, 404))

    async def list_webhooks(self, repo_path: str) -> list[Webhook]:
        hooks = await self._pages("list_webhooks", _repo(repo_path) + "/hooks")
        return [_webhook(h) for h in hooks if isinstance(h, dict)]

    async def create_webhook(self, repo_path: str, url: str, secret: str) -> Webhook:
        await self.delete_webhook(repo_path, url)
        data = await self._api_call("create_webhook", "POST", _repo(repo_path) + "/hooks", ok=(201,), json_body={
            "type": "gitea", "config": {"url": url, "content_type": "json", "secret": secret},
            "events": list(HOOK_EVENTS), "branch_filter": "*", "active": True,
        })
        return _webhook(data)

    async def delete_webhook(self, repo_path: str, url: str) -> None:
        for hook in await self.list_webhooks(repo_path):
            if hook.url == url:
                await self._api_call("delete_webhook", "DELETE", f"{_repo(repo_path)}/hooks/{hook.id}", ok=(204, 404))

    # ------------------------------------------------------------------------------- contents

    async def get_file(self, repo_path: str, commit_sha: str, file_path: str) -> bytes:
        call = "get_file"
        url = f"{self._api}{_repo(repo_path)}/raw/{quote(file_path)}?{urlencode({'ref': commit_sha})}"
        _, body = await self._send(call, "GET", url, headers=await self._auth_headers(call))
        return body

    async def get_ref(self, repo_path: str, ref: str) -> str:
        call = "get_ref"
        short = ref.removeprefix("refs/")
        data = await self._api_call(call, "GET", f"{_repo(repo_path)}/git/refs/{quote(short)}")
        refs = data if isinstance(data, list) else [data]
        match = [r for r in refs if isinstance(r, dict) and r.get("ref") == ref]
        if not match:
            raise ForgeNotFound(FORGE, call, f"ref {ref!r} not found")
        obj = match[0].get("object") or {}
        sha = _str(obj.get("sha"))
        if obj.get("type") == "tag":
            # An annotated tag: build the commit it points to, not the tag object.
            tag = await self._api_call(call, "GET", f"{_repo(repo_path)}/git/tags/{quote(sha)}")
            sha = _str(((tag or {}).get("object") or {}).get("sha")) or sha
        return sha

    async def get_commit_message(self, repo_path: str, commit_sha: str) -> str:
        data = await self._api_call("get_commit_message", "GET", f"{_repo(repo_path)}/git/commits/{quote(commit_sha)}")
        return _str(((data or {}).get("commit") or {}).get("message"))

    # ------------------------------------------------------------------------------- statuses

    async def set_commit_status(self, repo_path: str, commit_sha: str, *, state: CommitState, context: str,
                                description: str = "", target_url: str = "") -> None:
        await self._api_call("set_commit_status", "POST", f"{_repo(repo_path)}/statuses/{quote(commit_sha)}",
                             ok=(200, 201), json_body={"state": CommitState(state).value, "target_url": target_url,
                                                       "description": description, "context": context})

    # ------------------------------------------------------------------------------- webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
        return parse_webhook(headers, body, secret)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Gitea-Signature`` of a body: hex HMAC-SHA256 with the hook's secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    given = _header(headers, "X-Gitea-Signature")
    if not secret:
        raise WebhookRejected("the project has no webhook secret: deliveries can't be verified")
    if not given:
        raise WebhookRejected("unsigned delivery (no X-Gitea-Signature)")
    if not hmac.compare_digest(given.strip().lower(), sign(secret, body)):
        raise WebhookRejected("wrong webhook signature")


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
    """Verify, then map a Gitea delivery to a ``WebhookEvent`` (None: nothing to build)."""
    verify_signature(headers, body, secret)
    event = _header(headers, "X-Gitea-Event")
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest("malformed webhook payload: not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("malformed webhook payload: not a JSON object")
    delivery = _header(headers, "X-Gitea-Delivery")
    try:
        if event == "push":
            return _push_event(payload, delivery)
        if event == "pull_request":
            return _pull_request_event(payload, delivery)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"malformed {event} webhook payload: missing or wrong field {exc}") from None
    if not event:
        raise BadRequest("not a Gitea delivery (no X-Gitea-Event)")
    return None  # an event agola doesn't build (create, issues, ...): acknowledged, nothing created


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), "")
    return value or ""


def _repo_fields(payload: dict[str, Any]) -> dict[str, str]:
    repo = payload["repository"]
    owner = repo.get("owner") or {}
    return {
        "repo_path": f"{owner.get('username') or owner.get('login')}/{repo['name']}",
        "repo_web_url": _str(repo.get("html_url")),
        "ssh_url": _str(repo.get("ssh_url")),
        "http_url": _str(repo.get("clone_url")),
    }


def _sender(payload: dict[str, Any]) -> str:
    sender = payload.get("sender") or {}
    return _str(sender.get("username") or sender.get("login"))


def _push_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    ref = _str(payload["ref"])
    after = _str(payload.get("after"))
    if not after or after == ZERO_SHA:
        return None  # a deleted branch or tag: nothing to build
    repo = _repo_fields(payload)
    web = repo["repo_web_url"]
    common: dict[str, Any] = dict(delivery_id=delivery, sender=_sender(payload), ref=ref,
                  compare_link=_str(payload.get("compare_url")), **repo)
    head = payload.get("head_commit") or {}
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        commits = payload.get("commits") or []
        message = _str(commits[0].get("message") if commits else head.get("message"))
        return WebhookEvent(kind=EventKind.PUSH, commit_sha=after, message=message, branch=branch,
                            branch_link=f"{web}/src/branch/{branch}", commit_link=f"{web}/commit/{after}", **common)
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        sha = _str(head.get("id")) or after  # an annotated tag's `after` is the tag object
        return WebhookEvent(kind=EventKind.TAG, commit_sha=sha, message=f"Tag {tag}", tag=tag,
                            tag_link=f"{web}/src/tag/{tag}", commit_link=f"{web}/commit/{sha}", **common)
    raise BadRequest(f"push to {ref!r}: not a branch or a tag")


def _pull_request_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    pr = payload["pull_request"]
    if payload.get("action") not in PR_ACTIONS or pr.get("state") != "open":
        return None
    number = _str(pr.get("number") or payload.get("number"))
    head, base = pr["head"], pr["base"]
    sha = _str(head["sha"])
    repo: dict[str, Any] = dict(_repo_fields(payload))
    head_repo = head.get("repo_id") or (head.get("repo") or {}).get("id")
    base_repo = base.get("repo_id") or (base.get("repo") or {}).get("id")
    return WebhookEvent(kind=EventKind.PULL_REQUEST, commit_sha=sha, ref=f"refs/pull/{number}/head",
                        message=_str(pr.get("title")), sender=_sender(payload), delivery_id=delivery,
                        commit_link=f"{repo['repo_web_url']}/commit/{sha}", pull_request_id=number,
                        pull_request_link=_str(pr.get("html_url")), from_fork=head_repo != base_repo, **repo)


# ----------------------------------------------------------------------------------- decoders


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(data, dict):
        return _str(data.get("message") or data.get("error_description") or data.get("error"))
    return ""


def _repo_info(data: dict[str, Any]) -> RepoInfo:
    owner = data.get("owner") or {}
    return RepoInfo(id=_str(data.get("id")), path=f"{owner.get('login') or owner.get('username')}/{data.get('name')}",
                    html_url=_str(data.get("html_url")), ssh_clone_url=_str(data.get("ssh_url")),
                    http_clone_url=_str(data.get("clone_url")), default_branch=_str(data.get("default_branch")))


def _deploy_key(data: Any) -> DeployKey:
    if not isinstance(data, dict):
        raise ForgeBadRequest(FORGE, "create_deploy_key", "the answer is not a key")
    return DeployKey(id=_str(data.get("id")), title=_str(data.get("title")), key=_str(data.get("key")),
                     read_only=bool(data.get("read_only", True)))


def _webhook(data: Any) -> Webhook:
    if not isinstance(data, dict):
        raise ForgeBadRequest(FORGE, "create_webhook", "the answer is not a hook")
    config = data.get("config") or {}
    return Webhook(id=_str(data.get("id")), url=_str(config.get("url")),
                   events=tuple(_str(e) for e in data.get("events") or ()))


def _same_key(a: str, b: str) -> bool:
    """Two OpenSSH public keys are the same key whatever their comments."""
    return a.split()[:2] == b.split()[:2]
