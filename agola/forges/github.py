"""The GitHub driver: REST API v3, OAuth apps and webhooks, as the reference calls them
(``reference/forges/README.md`` §2), for github.com and GitHub Enterprise Server.

URLs (as Agola derives them from the remote source's ``api_url``): ``https://api.github.com`` is
github.com (web and OAuth2 on ``https://github.com``); anything else is a GitHub Enterprise
Server whose REST API is ``<api_url>/api/v3`` and whose web and OAuth2 pages are ``<api_url>``.

Fixes of the reference's quirks (README §4): a PR from a branch of the same repository is not a
fork (the head repository is compared by id); ``ping`` and a deleted branch or tag create nothing
(answered 200); a tag run builds the tagged commit; the SHA-1 ``X-Hub-Signature`` alone is refused;
deploy keys and hooks are read to their last page; rate limits are typed errors with their wait.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from agola.errors import BadRequest
from agola.forges.base import (
    CommitState,
    DeployKey,
    EventKind,
    ForgeError,
    ForgeNotFound,
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

FORGE = "github"
GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"
API_VERSION = "2022-11-28"
PAGE_SIZE = 100
SCOPES = ("repo",)
HOOK_EVENTS = ("push", "pull_request")
PR_ACTIONS = ("opened", "reopened", "synchronize")
# GitHub refuses longer commit status descriptions (422).
MAX_DESCRIPTION = 140
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def github_urls(api_url: str) -> tuple[str, str]:
    """(REST base, web base) of a remote source's ``api_url`` (github.com or an Enterprise Server)."""
    url = api_url.strip().rstrip("/")
    if not url or url == GITHUB_API:
        return GITHUB_API, GITHUB_WEB
    if url.endswith("/api/v3"):
        return url, url.removesuffix("/api/v3")
    return url + "/api/v3", url


def _repo(path: str) -> str:
    owner, _, name = path.partition("/")
    if not owner or not name or "/" in name:
        raise BadRequest(f"wrong repository path {path!r} (expected owner/name)")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def next_link(headers: Mapping[str, str]) -> str:
    """The ``rel="next"`` URL of a ``Link`` header ("" on the last page)."""
    for part in header(headers, "Link").split(","):
        match = _NEXT_LINK.search(part)
        if match:
            return match.group(1)
    return ""


class GitHubDriver(RestForge):
    forge = FORGE

    def __init__(self, remote_source: RemoteSource, token: OAuth2Token | None = None, *,
                 on_token_refresh: TokenSaver | None = None, on_token_refused: TokenRefused | None = None) -> None:
        super().__init__(remote_source, token, on_token_refresh=on_token_refresh, on_token_refused=on_token_refused)
        self._api, self._web = github_urls(remote_source.api_url)

    async def __aenter__(self) -> GitHubDriver:
        return self

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "agola"}

    def token_url(self) -> str:
        return f"{self._web}/login/oauth/access_token"

    def oauth2_authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self._rs.oauth2_client_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": " ".join(SCOPES), "state": state})
        return f"{self._web}/login/oauth/authorize?{query}"

    async def _get(self, call: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        url = self._api + path + (("?" + urlencode(params)) if params else "")
        return await self.api_json(call, "GET", url)

    async def _pages(self, call: str, path: str) -> list[dict[str, Any]]:
        """Every item of a list, following the ``Link: <...>; rel="next"`` headers."""
        out: list[dict[str, Any]] = []
        url = f"{self._api}{path}?{urlencode({'per_page': PAGE_SIZE})}"
        seen: set[str] = set()
        while url and url not in seen and len(seen) < MAX_PAGES:
            seen.add(url)
            answer = await self.api(call, "GET", url)
            items = decode_json(FORGE, call, answer.body)
            if not isinstance(items, list):
                raise ForgeError(FORGE, call, "the answer is not a list")
            out.extend(i for i in items if isinstance(i, dict))
            url = next_link(answer.headers)
        return out

    # ------------------------------------------------------------------------------ users, repos

    async def current_user(self) -> RemoteUser:
        data = await self._get("current_user", "/user")
        if not isinstance(data, dict) or not data.get("id"):
            raise ForgeError(FORGE, "current_user", "the answer has no user id")
        return RemoteUser(id=as_str(data["id"]), login=as_str(data.get("login")), email=as_str(data.get("email")),
                          avatar_url=as_str(data.get("avatar_url")))

    async def list_user_repos(self) -> list[RepoInfo]:
        """The repositories the account administers (agola adds keys and hooks to them)."""
        repos = await self._pages("list_user_repos", "/user/repos")
        return [_repo_info(r) for r in repos if (r.get("permissions") or {}).get("admin")]

    async def repo_info(self, repo_path: str) -> RepoInfo:
        data = await self._get("repo_info", _repo(repo_path))
        if not isinstance(data, dict):
            raise ForgeError(FORGE, "repo_info", "the answer is not a repository")
        return _repo_info(data)

    # --------------------------------------------------------------------------- keys and hooks

    async def create_deploy_key(self, repo_path: str, title: str, public_key: str) -> DeployKey:
        call = "create_deploy_key"
        for key in await self._pages(call, _repo(repo_path) + "/keys"):
            if key.get("title") != title:
                continue
            if same_key(as_str(key.get("key")), public_key) and key.get("read_only", True):
                return _deploy_key(key)
            await self.api(call, "DELETE", f"{self._api}{_repo(repo_path)}/keys/{key.get('id')}", ok=(204, 404))
        data = await self.api_json(call, "POST", f"{self._api}{_repo(repo_path)}/keys", ok=(201,),
                                   json_body={"title": title, "key": public_key, "read_only": True})
        return _deploy_key(data)

    async def delete_deploy_key(self, repo_path: str, title: str) -> None:
        call = "delete_deploy_key"
        for key in await self._pages(call, _repo(repo_path) + "/keys"):
            if key.get("title") == title:
                await self.api(call, "DELETE", f"{self._api}{_repo(repo_path)}/keys/{key.get('id')}", ok=(204, 404))

    async def list_webhooks(self, repo_path: str) -> list[Webhook]:
        return [_webhook(h) for h in await self._pages("list_webhooks", _repo(repo_path) + "/hooks")]

    async def create_webhook(self, repo_path: str, url: str, secret: str) -> Webhook:
        await self.delete_webhook(repo_path, url)
        config = {"url": url, "content_type": "json", "secret": secret,
                  "insecure_ssl": "1" if self._rs.skip_verify else "0"}
        data = await self.api_json("create_webhook", "POST", f"{self._api}{_repo(repo_path)}/hooks", ok=(201,),
                                   json_body={"name": "web", "config": config, "events": list(HOOK_EVENTS),
                                              "active": True})
        return _webhook(data)

    async def delete_webhook(self, repo_path: str, url: str) -> None:
        for hook in await self.list_webhooks(repo_path):
            if hook.url == url:
                await self.api("delete_webhook", "DELETE", f"{self._api}{_repo(repo_path)}/hooks/{hook.id}",
                               ok=(204, 404))

    # ------------------------------------------------------------------------------- contents

    async def get_file(self, repo_path: str, commit_sha: str, file_path: str) -> bytes:
        call = "get_file"
        url = f"{self._api}{_repo(repo_path)}/contents/{quote(file_path.lstrip('/'))}?{urlencode({'ref': commit_sha})}"
        data = decode_json(FORGE, call, (await self.api(call, "GET", url)).body)
        if not isinstance(data, dict) or data.get("type") != "file":
            raise ForgeNotFound(FORGE, call, f"{file_path!r} is not a file at {commit_sha}")
        if data.get("encoding") == "base64" and (data.get("content") or not data.get("size")):
            try:
                return base64.b64decode(as_str(data.get("content")))
            except ValueError:
                raise ForgeError(FORGE, call, "the file content is not base64") from None
        # Files over 1 MB come without content (encoding "none"): ask for the raw bytes.
        return (await self.api(call, "GET", url, headers={"Accept": "application/vnd.github.raw+json"})).body

    async def get_ref(self, repo_path: str, ref: str) -> str:
        call = "get_ref"
        short = quote(ref.removeprefix("refs/"))
        data = await self._get(call, f"{_repo(repo_path)}/git/ref/{short}")
        obj = _object(data)
        for _ in range(5):  # an annotated tag (perhaps of a tag): build the commit it points to
            if obj.get("type") != "tag":
                break
            tag = await self._get(call, f"{_repo(repo_path)}/git/tags/{quote(as_str(obj.get('sha')))}")
            obj = _object(tag)
        if obj.get("type") != "commit" or not obj.get("sha"):
            raise ForgeNotFound(FORGE, call, f"ref {ref!r} does not point to a commit")
        return as_str(obj["sha"])

    async def get_commit_message(self, repo_path: str, commit_sha: str) -> str:
        data = await self._get("get_commit_message", f"{_repo(repo_path)}/git/commits/{quote(commit_sha)}")
        return as_str((data or {}).get("message") if isinstance(data, dict) else "")

    # ------------------------------------------------------------------------------- statuses

    async def set_commit_status(self, repo_path: str, commit_sha: str, *, state: CommitState, context: str,
                                description: str = "", target_url: str = "") -> None:
        await self.api("set_commit_status", "POST", f"{self._api}{_repo(repo_path)}/statuses/{quote(commit_sha)}",
                       ok=(201,), json_body={"state": CommitState(state).value, "target_url": target_url,
                                             "description": description[:MAX_DESCRIPTION], "context": context})

    # ------------------------------------------------------------------------------- webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
        return parse_webhook(headers, body, secret)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    require_secret(secret)
    given = header(headers, "X-Hub-Signature-256").strip()
    if not given:
        if header(headers, "X-Hub-Signature"):
            raise WebhookRejected("only a SHA-1 signature (X-Hub-Signature): X-Hub-Signature-256 is required")
        raise WebhookRejected("unsigned delivery (no X-Hub-Signature-256)")
    if not same_secret(given.lower(), sign(secret, body)):
        raise WebhookRejected("wrong webhook signature")


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
    """Verify, then map a GitHub delivery to a ``WebhookEvent``. None: nothing to build (``ping``,
    a closed PR, a deleted branch or tag), which the gateway answers 200."""
    verify_signature(headers, body, secret)
    event = header(headers, "X-GitHub-Event")
    if not event:
        raise BadRequest("not a GitHub delivery (no X-GitHub-Event)")
    if event not in ("ping", *HOOK_EVENTS):
        raise BadRequest(f"github event {event!r} is not one agola subscribes to (push, pull_request)")
    if header(headers, "Content-Type").split(";")[0].strip() == "application/x-www-form-urlencoded":
        body = (parse_qs(body.decode(errors="replace")).get("payload") or [""])[0].encode()
    payload = webhook_json(FORGE, body)
    delivery = header(headers, "X-GitHub-Delivery")
    try:
        if event == "push":
            return _push_event(payload, delivery)
        if event == "pull_request":
            return _pull_request_event(payload, delivery)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"malformed github {event} payload: missing or wrong field {exc}") from None
    return None  # ping: GitHub checks the hook answers


def _repo_fields(payload: dict[str, Any]) -> dict[str, str]:
    repo = payload["repository"]
    owner = repo.get("owner") or {}
    path = as_str(repo.get("full_name")) or f"{owner.get('login') or owner.get('name')}/{repo['name']}"
    return {"repo_path": path, "repo_id": as_str(repo.get("id")), "repo_web_url": as_str(repo.get("html_url")),
            "ssh_url": as_str(repo.get("ssh_url")), "http_url": as_str(repo.get("clone_url"))}


def _sender(payload: dict[str, Any]) -> str:
    sender = payload.get("sender") or {}
    return as_str(sender.get("login") or sender.get("name"))


def _push_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    ref = as_str(payload["ref"])
    after = as_str(payload["after"])
    if payload.get("deleted") or after == ZERO_SHA:
        return None  # a deleted branch or tag: nothing to build
    repo = _repo_fields(payload)
    web = repo["repo_web_url"]
    head = payload.get("head_commit") or {}
    common: dict[str, Any] = dict(delivery_id=delivery, sender=_sender(payload), ref=ref,
                                  compare_link=as_str(payload.get("compare")), **repo)
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        return WebhookEvent(kind=EventKind.PUSH, commit_sha=after, message=as_str(head.get("message")),
                            branch=branch, branch_link=f"{web}/tree/{branch}", commit_link=f"{web}/commit/{after}",
                            **common)
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        sha = as_str(head.get("id")) or after  # an annotated tag's `after` is the tag object
        return WebhookEvent(kind=EventKind.TAG, commit_sha=sha, message=f"Tag {tag}", tag=tag,
                            tag_link=f"{web}/tree/{tag}", commit_link=f"{web}/commit/{sha}", **common)
    raise BadRequest(f"push to {ref!r}: not a branch or a tag")


def _pull_request_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    pr = payload["pull_request"]
    if payload.get("action") not in PR_ACTIONS or pr.get("state") != "open":
        return None  # closed, labelled, edited...: no new code
    number = as_str(pr.get("number") or payload.get("number"))
    head, base = pr["head"], pr["base"]
    sha = as_str(head["sha"])
    repo = _repo_fields(payload)
    head_repo, base_repo = head.get("repo") or {}, base.get("repo") or {}
    # A deleted fork has no head repository: treated as a fork (no secrets).
    from_fork = not head_repo or as_str(head_repo.get("id")) != as_str(base_repo.get("id") or payload["repository"]["id"])
    return WebhookEvent(kind=EventKind.PULL_REQUEST, commit_sha=sha, ref=f"refs/pull/{number}/head",
                        message=as_str(pr.get("title")), sender=_sender(payload), delivery_id=delivery,
                        commit_link=f"{repo['repo_web_url']}/commit/{sha}", pull_request_id=number,
                        pull_request_link=as_str(pr.get("html_url")), from_fork=from_fork, **repo)


# ----------------------------------------------------------------------------------- decoders


def _object(data: Any) -> dict[str, Any]:
    """The ``object`` of a git ref or tag answer."""
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def _repo_info(data: dict[str, Any]) -> RepoInfo:
    owner = data.get("owner") or {}
    path = as_str(data.get("full_name")) or f"{owner.get('login')}/{data.get('name')}"
    return RepoInfo(id=as_str(data.get("id")), path=path, html_url=as_str(data.get("html_url")),
                    ssh_clone_url=as_str(data.get("ssh_url")), http_clone_url=as_str(data.get("clone_url")),
                    default_branch=as_str(data.get("default_branch")))


def _deploy_key(data: Any) -> DeployKey:
    if not isinstance(data, dict):
        raise ForgeError(FORGE, "create_deploy_key", "the answer is not a key")
    return DeployKey(id=as_str(data.get("id")), title=as_str(data.get("title")), key=as_str(data.get("key")),
                     read_only=bool(data.get("read_only", True)))


def _webhook(data: Any) -> Webhook:
    if not isinstance(data, dict):
        raise ForgeError(FORGE, "create_webhook", "the answer is not a hook")
    config = data.get("config") or {}
    return Webhook(id=as_str(data.get("id")), url=as_str(config.get("url")),
                   events=tuple(as_str(e) for e in data.get("events") or ()))
