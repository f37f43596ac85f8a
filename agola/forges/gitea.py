"""The Gitea driver: REST API v1, OAuth2 and webhooks, as the reference calls them
(``reference/forges/README.md`` §1), over one aiohttp session per driver.

Fixes of the reference's quirks (README compatibility notes): an unsigned or wrongly signed
delivery is refused; the pull request id is the PR number (what ``refs/pull/<n>/head`` uses), not
Gitea's global id; a tag run builds the tagged commit, not an annotated tag object; a branch or tag
deletion creates nothing; lists of keys and hooks are read to their last page; a trailing slash of
the API URL never doubles in OAuth2 URLs; password sources create tokens with the scopes agola
needs (Gitea ≥ 1.19 refuses scope-less tokens on the API). The transport (session, typed errors,
OAuth2 token requests and refresh) is ``rest.RestForge``, shared with the GitHub and GitLab drivers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from agola.errors import BadRequest
from agola.forges.base import (
    CommitState,
    DeployKey,
    EventKind,
    ForgeBadRequest,
    ForgeError,
    ForgeNotFound,
    ForgeUnauthorized,
    OAuth2Token,
    RemoteUser,
    RepoInfo,
    TokenRefused,
    TokenSaver,
    Webhook,
    WebhookEvent,
    WebhookRejected,
)
from agola.forges.rest import (
    MAX_PAGES,
    ZERO_SHA,
    RestForge,
    as_str,
    decode_json,
    header,
    require_secret,
    same_key,
    same_secret,
    webhook_json,
)
from agola.types.configstore import RemoteSource

FORGE = "gitea"
PAGE_SIZE = 50
HOOK_EVENTS = ("push", "pull_request")
TOKEN_SCOPES = ("write:repository", "read:user")
PR_ACTIONS = ("opened", "reopened", "synchronized")


def _repo(path: str) -> str:
    owner, _, name = path.partition("/")
    if not owner or not name or "/" in name:
        raise BadRequest(f"wrong repository path {path!r} (expected owner/name)")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class GiteaDriver(RestForge):
    """Gitea over ``RestForge`` (the transport the forge drivers share): one session, typed
    errors, OAuth2 exchange and refresh (before a call when the token expires within 5 minutes,
    and once more when Gitea refuses a token that has a refresh token)."""

    forge = FORGE

    def __init__(self, remote_source: RemoteSource, token: OAuth2Token | None = None, *,
                 on_token_refresh: TokenSaver | None = None, on_token_refused: TokenRefused | None = None) -> None:
        super().__init__(remote_source, token, on_token_refresh=on_token_refresh, on_token_refused=on_token_refused)
        self._root = remote_source.api_url.rstrip("/")
        self._api = self._root + "/api/v1"

    async def __aenter__(self) -> GiteaDriver:
        return self

    def token_url(self) -> str:
        return f"{self._root}/login/oauth/access_token"

    async def _api_call(self, call: str, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                        json_body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        url = self._api + path + (("?" + urlencode(params)) if params else "")
        return await self.api_json(call, method, url, json_body=json_body, ok=ok)

    async def _pages(self, call: str, path: str, extra: Mapping[str, Any] | None = None) -> list[Any]:
        out: list[Any] = []
        page = 1
        while page <= MAX_PAGES:
            items = await self._api_call(call, "GET", path, params={**(extra or {}), "limit": PAGE_SIZE, "page": page})
            if not isinstance(items, list) or not items:
                return out
            out.extend(items)
            if len(items) < PAGE_SIZE:
                return out
            page += 1
        return out

    # ---------------------------------------------------------------------------------- OAuth2

    def oauth2_authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self._rs.oauth2_client_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": "", "state": state})
        return f"{self._root}/login/oauth/authorize?{query}"

    async def create_access_token(self, login: str, password: str, token_name: str) -> str:
        call = "create_access_token"
        basic = base64.b64encode(f"{login}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        base = f"{self._api}/users/{quote(login, safe='')}/tokens"
        try:
            listed = await self.send(call, "GET", f"{base}?limit={PAGE_SIZE}&page=1", headers=headers)
        except ForgeUnauthorized:
            raise ForgeUnauthorized(FORGE, call, "wrong login name or password", forge_status=401) from None
        existing = decode_json(FORGE, call, listed.body) or []
        if any(isinstance(t, dict) and t.get("name") == token_name for t in existing):
            # A token's value is shown once: an existing one can't be reused, replace it.
            await self.send(call, "DELETE", f"{base}/{quote(token_name, safe='')}", headers=headers, ok=(204,))
        created = await self.send(call, "POST", base, headers=headers, ok=(201,),
                                  json_body={"name": token_name, "scopes": list(TOKEN_SCOPES)})
        data = decode_json(FORGE, call, created.body)
        token = as_str(data.get("sha1") if isinstance(data, dict) else "")
        if not token:
            raise ForgeError(FORGE, call, "the answer carries no token")
        return token

    # ------------------------------------------------------------------------------ users, repos

    async def current_user(self) -> RemoteUser:
        data = await self._api_call("current_user", "GET", "/user")
        if not isinstance(data, dict) or not data.get("id"):
            raise ForgeError(FORGE, "current_user", "the answer has no user id")
        return RemoteUser(id=as_str(data.get("id")), login=as_str(data.get("login") or data.get("username")),
                          email=as_str(data.get("email")), avatar_url=as_str(data.get("avatar_url")))

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
            if same_key(as_str(key.get("key")), public_key):
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
        return (await self.api(call, "GET", url)).body

    async def get_ref(self, repo_path: str, ref: str) -> str:
        call = "get_ref"
        short = ref.removeprefix("refs/")
        data = await self._api_call(call, "GET", f"{_repo(repo_path)}/git/refs/{quote(short)}")
        refs = data if isinstance(data, list) else [data]
        match = [r for r in refs if isinstance(r, dict) and r.get("ref") == ref]
        if not match:
            raise ForgeNotFound(FORGE, call, f"ref {ref!r} not found")
        obj = match[0].get("object") or {}
        sha = as_str(obj.get("sha"))
        if obj.get("type") == "tag":
            # An annotated tag: build the commit it points to, not the tag object.
            tag = await self._api_call(call, "GET", f"{_repo(repo_path)}/git/tags/{quote(sha)}")
            sha = as_str(((tag or {}).get("object") or {}).get("sha")) or sha
        return sha

    async def get_commit_message(self, repo_path: str, commit_sha: str) -> str:
        data = await self._api_call("get_commit_message", "GET", f"{_repo(repo_path)}/git/commits/{quote(commit_sha)}")
        return as_str(((data or {}).get("commit") or {}).get("message"))

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
    require_secret(secret)
    given = header(headers, "X-Gitea-Signature")
    if not given:
        raise WebhookRejected("unsigned delivery (no X-Gitea-Signature)")
    if not same_secret(given.strip().lower(), sign(secret, body)):
        raise WebhookRejected("wrong webhook signature")


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
    """Verify, then map a Gitea delivery to a ``WebhookEvent`` (None: nothing to build)."""
    verify_signature(headers, body, secret)
    event = header(headers, "X-Gitea-Event")
    payload = webhook_json(FORGE, body)
    delivery = header(headers, "X-Gitea-Delivery")
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


def _repo_fields(payload: dict[str, Any]) -> dict[str, str]:
    repo = payload["repository"]
    owner = repo.get("owner") or {}
    return {
        "repo_path": f"{owner.get('username') or owner.get('login')}/{repo['name']}",
        "repo_id": as_str(repo.get("id")),
        "repo_web_url": as_str(repo.get("html_url")),
        "ssh_url": as_str(repo.get("ssh_url")),
        "http_url": as_str(repo.get("clone_url")),
    }


def _sender(payload: dict[str, Any]) -> str:
    sender = payload.get("sender") or {}
    return as_str(sender.get("username") or sender.get("login"))


def _push_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    ref = as_str(payload["ref"])
    after = as_str(payload.get("after"))
    if not after or after == ZERO_SHA:
        return None  # a deleted branch or tag: nothing to build
    repo = _repo_fields(payload)
    web = repo["repo_web_url"]
    common: dict[str, Any] = dict(delivery_id=delivery, sender=_sender(payload), ref=ref,
                  compare_link=as_str(payload.get("compare_url")), **repo)
    head = payload.get("head_commit") or {}
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        commits = payload.get("commits") or []
        message = as_str(commits[0].get("message") if commits else head.get("message"))
        return WebhookEvent(kind=EventKind.PUSH, commit_sha=after, message=message, branch=branch,
                            branch_link=f"{web}/src/branch/{branch}", commit_link=f"{web}/commit/{after}", **common)
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        sha = as_str(head.get("id")) or after  # an annotated tag's `after` is the tag object
        return WebhookEvent(kind=EventKind.TAG, commit_sha=sha, message=f"Tag {tag}", tag=tag,
                            tag_link=f"{web}/src/tag/{tag}", commit_link=f"{web}/commit/{sha}", **common)
    raise BadRequest(f"push to {ref!r}: not a branch or a tag")


def _pull_request_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    pr = payload["pull_request"]
    if payload.get("action") not in PR_ACTIONS or pr.get("state") != "open":
        return None
    number = as_str(pr.get("number") or payload.get("number"))
    head, base = pr["head"], pr["base"]
    sha = as_str(head["sha"])
    repo: dict[str, Any] = dict(_repo_fields(payload))
    head_repo = head.get("repo_id") or (head.get("repo") or {}).get("id")
    base_repo = base.get("repo_id") or (base.get("repo") or {}).get("id")
    return WebhookEvent(kind=EventKind.PULL_REQUEST, commit_sha=sha, ref=f"refs/pull/{number}/head",
                        message=as_str(pr.get("title")), sender=_sender(payload), delivery_id=delivery,
                        commit_link=f"{repo['repo_web_url']}/commit/{sha}", pull_request_id=number,
                        pull_request_link=as_str(pr.get("html_url")), from_fork=head_repo != base_repo, **repo)


# ----------------------------------------------------------------------------------- decoders


def _repo_info(data: dict[str, Any]) -> RepoInfo:
    owner = data.get("owner") or {}
    return RepoInfo(id=as_str(data.get("id")), path=f"{owner.get('login') or owner.get('username')}/{data.get('name')}",
                    html_url=as_str(data.get("html_url")), ssh_clone_url=as_str(data.get("ssh_url")),
                    http_clone_url=as_str(data.get("clone_url")), default_branch=as_str(data.get("default_branch")))


def _deploy_key(data: Any) -> DeployKey:
    if not isinstance(data, dict):
        raise ForgeBadRequest(FORGE, "create_deploy_key", "the answer is not a key")
    return DeployKey(id=as_str(data.get("id")), title=as_str(data.get("title")), key=as_str(data.get("key")),
                     read_only=bool(data.get("read_only", True)))


def _webhook(data: Any) -> Webhook:
    if not isinstance(data, dict):
        raise ForgeBadRequest(FORGE, "create_webhook", "the answer is not a hook")
    config = data.get("config") or {}
    return Webhook(id=as_str(data.get("id")), url=as_str(config.get("url")),
                   events=tuple(as_str(e) for e in data.get("events") or ()))
