"""The GitLab driver: REST API v4, OAuth2 (with token refresh) and webhooks, as the reference calls
them (``reference/forges/README.md`` §3), for gitlab.com and self-managed GitLab.

Projects are addressed by id or by their URL-encoded path (``group/sub/app`` →
``group%2Fsub%2Fapp``, dots as ``%2E`` as GitLab's Go client does, so a path never looks like a
format suffix). Lists follow ``X-Next-Page``. Commit statuses use GitLab's state names.

Fixes of the reference's quirks (README §4): merge request hooks build a run only when they bring
code (``open``, ``reopen``, ``update`` with new commits); a branch or tag deletion builds nothing,
a branch created on an existing commit does; a tag run builds the tagged commit (``checkout_sha``),
not an annotated tag object; commit message and link come from the pushed head commit; the webhook
token is compared in constant time; keys, hooks and repositories are read to their last page;
manual runs on tags look the tag up by its name.
"""

from __future__ import annotations

import base64
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

FORGE = "gitlab"
PAGE_SIZE = 100
SCOPES = ("api",)
# Maintainer: can add deploy keys and hooks.
MIN_ACCESS_LEVEL = 40
MR_ACTIONS = ("open", "reopen", "update")
# agola's commit state -> GitLab's (pending, running, success, failed, canceled).
STATES = {CommitState.PENDING: "pending", CommitState.SUCCESS: "success",
          CommitState.FAILURE: "failed", CommitState.ERROR: "failed"}
MAX_DESCRIPTION = 255
HOOK_EVENTS = ("Push Hook", "Tag Push Hook", "Merge Request Hook")


def project_id(path_or_id: str) -> str:
    """The ``:id`` of a project: its number, or its full path URL-encoded."""
    path = path_or_id.strip().strip("/")
    if not path or (not path.isdigit() and "/" not in path):
        raise BadRequest(f"wrong project path {path_or_id!r} (expected namespace/name)")
    return quote(path, safe="").replace(".", "%2E")


def _enc(segment: str) -> str:
    return quote(segment, safe="").replace(".", "%2E")


class GitLabDriver(RestForge):
    forge = FORGE

    def __init__(self, remote_source: RemoteSource, token: OAuth2Token | None = None, *,
                 on_token_refresh: TokenSaver | None = None, on_token_refused: TokenRefused | None = None) -> None:
        super().__init__(remote_source, token, on_token_refresh=on_token_refresh, on_token_refused=on_token_refused)
        self._root = remote_source.api_url.strip().rstrip("/").removesuffix("/api/v4")
        self._api = self._root + "/api/v4"

    async def __aenter__(self) -> GitLabDriver:
        return self

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": "agola"}

    def token_url(self) -> str:
        return f"{self._root}/oauth/token"

    def oauth2_authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self._rs.oauth2_client_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": " ".join(SCOPES), "state": state})
        return f"{self._root}/oauth/authorize?{query}"

    def _project(self, repo_path: str) -> str:
        return f"{self._api}/projects/{project_id(repo_path)}"

    async def _pages(self, call: str, url: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a list, page after page while ``X-Next-Page`` names one."""
        out: list[dict[str, Any]] = []
        page = "1"
        for _ in range(MAX_PAGES):
            answer = await self.api(call, "GET", f"{url}?{urlencode({**(params or {}), 'per_page': PAGE_SIZE, 'page': page})}")
            items = decode_json(FORGE, call, answer.body)
            if not isinstance(items, list):
                raise ForgeError(FORGE, call, "the answer is not a list")
            out.extend(i for i in items if isinstance(i, dict))
            nxt = header(answer.headers, "X-Next-Page").strip()
            if not nxt or nxt == page or not items:
                break
            page = nxt
        return out

    # ------------------------------------------------------------------------------ users, repos

    async def current_user(self) -> RemoteUser:
        data = await self.api_json("current_user", "GET", f"{self._api}/user")
        if not isinstance(data, dict) or not data.get("id"):
            raise ForgeError(FORGE, "current_user", "the answer has no user id")
        return RemoteUser(id=as_str(data["id"]), login=as_str(data.get("username")),
                          email=as_str(data.get("email") or data.get("public_email")),
                          avatar_url=as_str(data.get("avatar_url")))

    async def list_user_repos(self) -> list[RepoInfo]:
        """The projects the account maintains (agola adds keys and hooks to them)."""
        projects = await self._pages("list_user_repos", f"{self._api}/projects",
                                     {"min_access_level": MIN_ACCESS_LEVEL, "simple": "false"})
        return [_repo_info(p) for p in projects]

    async def repo_info(self, repo_path: str) -> RepoInfo:
        data = await self.api_json("repo_info", "GET", self._project(repo_path))
        if not isinstance(data, dict):
            raise ForgeError(FORGE, "repo_info", "the answer is not a project")
        return _repo_info(data)

    # --------------------------------------------------------------------------- keys and hooks

    async def create_deploy_key(self, repo_path: str, title: str, public_key: str) -> DeployKey:
        call = "create_deploy_key"
        base = self._project(repo_path) + "/deploy_keys"
        for key in await self._pages(call, base):
            if key.get("title") != title:
                continue
            if same_key(as_str(key.get("key")), public_key) and not key.get("can_push"):
                return _deploy_key(key)
            await self.api(call, "DELETE", f"{base}/{key.get('id')}", ok=(204, 404))
        data = await self.api_json(call, "POST", base, ok=(201,),
                                   json_body={"title": title, "key": public_key, "can_push": False})
        return _deploy_key(data)

    async def delete_deploy_key(self, repo_path: str, title: str) -> None:
        call = "delete_deploy_key"
        base = self._project(repo_path) + "/deploy_keys"
        for key in await self._pages(call, base):
            if key.get("title") == title:
                await self.api(call, "DELETE", f"{base}/{key.get('id')}", ok=(204, 404))

    async def list_webhooks(self, repo_path: str) -> list[Webhook]:
        return [_webhook(h) for h in await self._pages("list_webhooks", self._project(repo_path) + "/hooks")]

    async def create_webhook(self, repo_path: str, url: str, secret: str) -> Webhook:
        await self.delete_webhook(repo_path, url)
        data = await self.api_json("create_webhook", "POST", self._project(repo_path) + "/hooks", ok=(201,), json_body={
            "url": url, "token": secret, "push_events": True, "tag_push_events": True,
            "merge_requests_events": True, "enable_ssl_verification": not self._rs.skip_verify,
        })
        return _webhook(data)

    async def delete_webhook(self, repo_path: str, url: str) -> None:
        for hook in await self.list_webhooks(repo_path):
            if hook.url == url:
                await self.api("delete_webhook", "DELETE", f"{self._project(repo_path)}/hooks/{hook.id}", ok=(204, 404))

    # ------------------------------------------------------------------------------- contents

    async def get_file(self, repo_path: str, commit_sha: str, file_path: str) -> bytes:
        call = "get_file"
        url = (f"{self._project(repo_path)}/repository/files/{_enc(file_path.lstrip('/'))}"
               f"?{urlencode({'ref': commit_sha})}")
        data = await self.api_json(call, "GET", url)
        if not isinstance(data, dict) or data.get("content") is None:
            raise ForgeNotFound(FORGE, call, f"{file_path!r} is not a file at {commit_sha}")
        if data.get("encoding", "base64") != "base64":
            return as_str(data["content"]).encode()
        try:
            return base64.b64decode(as_str(data["content"]))
        except ValueError:
            raise ForgeError(FORGE, call, "the file content is not base64") from None

    async def get_ref(self, repo_path: str, ref: str) -> str:
        call = "get_ref"
        repo = f"{self._project(repo_path)}/repository"
        if ref.startswith("refs/heads/"):
            url = f"{repo}/branches/{quote(ref.removeprefix('refs/heads/'), safe='')}"
        elif ref.startswith("refs/tags/"):
            url = f"{repo}/tags/{quote(ref.removeprefix('refs/tags/'), safe='')}"
        else:
            url = f"{repo}/commits/{quote(ref, safe='')}"
        data = await self.api_json(call, "GET", url)
        # A branch or a tag (annotated or not) names its commit in `commit.id`; a commit is its `id`.
        commit = (data.get("commit") if "commit" in data else data) if isinstance(data, dict) else None
        sha = as_str(commit.get("id")) if isinstance(commit, dict) else ""
        if not sha:
            raise ForgeNotFound(FORGE, call, f"ref {ref!r} does not point to a commit")
        return sha

    async def get_commit_message(self, repo_path: str, commit_sha: str) -> str:
        data = await self.api_json("get_commit_message", "GET",
                                   f"{self._project(repo_path)}/repository/commits/{quote(commit_sha, safe='')}")
        return as_str(data.get("message") if isinstance(data, dict) else "")

    # ------------------------------------------------------------------------------- statuses

    async def set_commit_status(self, repo_path: str, commit_sha: str, *, state: CommitState, context: str,
                                description: str = "", target_url: str = "") -> None:
        body = {"state": STATES[CommitState(state)], "name": context, "target_url": target_url,
                "description": description[:MAX_DESCRIPTION]}
        url = f"{self._project(repo_path)}/statuses/{quote(commit_sha, safe='')}"
        try:
            await self.api("set_commit_status", "POST", url, ok=(200, 201), json_body=body)
        except ForgeBadRequest as exc:
            # GitLab refuses to set the state a status already has ("Cannot transition status via
            # :enqueue from :pending"): it is set, which is what was asked.
            if "Cannot transition status" not in str(exc):
                raise

    # ------------------------------------------------------------------------------- webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
        return parse_webhook(headers, body, secret)


def verify_token(headers: Mapping[str, str], secret: str) -> None:
    require_secret(secret)
    given = header(headers, "X-Gitlab-Token")
    if not given:
        raise WebhookRejected("unsigned delivery (no X-Gitlab-Token)")
    if not same_secret(given, secret):
        raise WebhookRejected("wrong webhook token")


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
    """Verify the token, then map a GitLab delivery to a ``WebhookEvent``. None: nothing to build
    (a deleted branch or tag, a merge request event that brings no code), answered 200."""
    verify_token(headers, secret)
    event = header(headers, "X-Gitlab-Event")
    if not event:
        raise BadRequest("not a GitLab delivery (no X-Gitlab-Event)")
    if event not in HOOK_EVENTS:
        raise BadRequest(f"gitlab event {event!r} is not one agola subscribes to ({', '.join(HOOK_EVENTS)})")
    payload = webhook_json(FORGE, body)
    delivery = header(headers, "Idempotency-Key") or header(headers, "X-Gitlab-Event-UUID")
    try:
        if event == "Merge Request Hook":
            return _merge_request_event(payload, delivery)
        return _push_event(payload, delivery)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"malformed gitlab {event} payload: missing or wrong field {exc}") from None


def _project_fields(project: dict[str, Any]) -> dict[str, str]:
    return {"repo_path": as_str(project["path_with_namespace"]), "repo_id": as_str(project.get("id")),
            "repo_web_url": as_str(project.get("web_url")),
            "ssh_url": as_str(project.get("git_ssh_url") or project.get("ssh_url")),
            "http_url": as_str(project.get("git_http_url") or project.get("http_url"))}


def _push_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    ref = as_str(payload["ref"])
    after = as_str(payload["after"])
    if after == ZERO_SHA:
        return None  # a deleted branch or tag: nothing to build
    sha = as_str(payload.get("checkout_sha")) or after
    repo = _project_fields(payload["project"])
    web = repo["repo_web_url"]
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    head = next((c for c in commits if c.get("id") == sha), commits[-1] if commits else {})
    common: dict[str, Any] = dict(delivery_id=delivery, ref=ref, commit_sha=sha,
                                  sender=as_str(payload.get("user_username") or payload.get("user_name")),
                                  commit_link=as_str(head.get("url")) or f"{web}/-/commit/{sha}", **repo)
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        return WebhookEvent(kind=EventKind.PUSH, message=as_str(head.get("message")), branch=branch,
                            branch_link=f"{web}/-/tree/{branch}", **common)
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        return WebhookEvent(kind=EventKind.TAG, message=f"Tag {tag}", tag=tag, tag_link=f"{web}/-/tree/{tag}", **common)
    raise BadRequest(f"push to {ref!r}: not a branch or a tag")


def _merge_request_event(payload: dict[str, Any], delivery: str) -> WebhookEvent | None:
    mr = payload["object_attributes"]
    action = mr.get("action")
    if mr.get("state") != "opened" or action not in MR_ACTIONS or (action == "update" and not mr.get("oldrev")):
        return None  # closed, merged, approved, retitled...: no new code
    iid = as_str(mr["iid"])
    last = mr.get("last_commit") or {}
    sha = as_str(last["id"])
    repo = _project_fields(payload.get("project") or mr["target"])
    user = payload.get("user") or {}
    return WebhookEvent(kind=EventKind.PULL_REQUEST, commit_sha=sha, ref=f"refs/merge-requests/{iid}/head",
                        message=as_str(mr.get("title")), sender=as_str(user.get("username") or user.get("name")),
                        delivery_id=delivery, commit_link=as_str(last.get("url")) or f"{repo['repo_web_url']}/-/commit/{sha}",
                        pull_request_id=iid, pull_request_link=as_str(mr.get("url")),
                        from_fork=as_str(mr.get("source_project_id")) != as_str(mr.get("target_project_id")), **repo)


# ----------------------------------------------------------------------------------- decoders


def _repo_info(data: dict[str, Any]) -> RepoInfo:
    return RepoInfo(id=as_str(data.get("id")), path=as_str(data.get("path_with_namespace")),
                    html_url=as_str(data.get("web_url")), ssh_clone_url=as_str(data.get("ssh_url_to_repo")),
                    http_clone_url=as_str(data.get("http_url_to_repo")), default_branch=as_str(data.get("default_branch")))


def _deploy_key(data: Any) -> DeployKey:
    if not isinstance(data, dict):
        raise ForgeError(FORGE, "create_deploy_key", "the answer is not a key")
    return DeployKey(id=as_str(data.get("id")), title=as_str(data.get("title")), key=as_str(data.get("key")),
                     read_only=not data.get("can_push", False))


def _webhook(data: Any) -> Webhook:
    if not isinstance(data, dict):
        raise ForgeError(FORGE, "create_webhook", "the answer is not a hook")
    events = tuple(e for e, flag in (("push", "push_events"), ("tag_push", "tag_push_events"),
                                     ("merge_requests", "merge_requests_events")) if data.get(flag))
    return Webhook(id=as_str(data.get("id")), url=as_str(data.get("url")), events=events)
