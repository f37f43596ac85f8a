"""The forge driver interface: what agola asks of a git host (Gitea today; GitHub and GitLab next).

One driver instance talks to one forge as one account (a linked account's token, or no token for
the OAuth2 calls). It holds one HTTP client session: use it as an async context manager or call
``close()``. Every forge failure becomes a ``ForgeError`` subclass naming the forge and the call,
that is also the agola error of the same meaning (``ForgeNotFound`` is a ``NotExist``, ...), so
the gateway's error mapping answers the right HTTP status without knowing about forges.

Webhook parsing is pure (no I/O): ``parse_webhook`` verifies the signature **first** and raises
``WebhookRejected`` (an ``Unauthorized``) when it is missing or wrong, whatever the payload.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from agola.errors import AgolaError, BadRequest, Forbidden, NotExist, Unauthorized, Unavailable

# ---------------------------------------------------------------------------------------------
# Errors


class ForgeError(AgolaError):
    """A call to a forge failed. ``forge`` is the remote source type (``gitea``), ``call`` the
    driver method (``repo_info``); the message names both and never holds a token."""

    status = 502
    code = "forge_error"

    def __init__(self, forge: str, call: str, message: str, *, forge_status: int = 0) -> None:
        super().__init__(f"{forge} {call}: {message}")
        self.forge = forge
        self.call = call
        self.forge_status = forge_status


class ForgeUnreachable(ForgeError, Unavailable):
    """The forge did not answer (connection refused, timeout, TLS failure) or answered 5xx."""

    status = Unavailable.status
    code = Unavailable.code


class ForgeNotFound(ForgeError, NotExist):
    status = NotExist.status
    code = NotExist.code


class ForgeUnauthorized(ForgeError, Unauthorized):
    """The forge refused the credentials (wrong password, revoked or expired token)."""

    status = Unauthorized.status
    code = Unauthorized.code


class ForgeForbidden(ForgeError, Forbidden):
    status = Forbidden.status
    code = Forbidden.code


class ForgeBadRequest(ForgeError, BadRequest):
    """The forge refused the request as invalid (4xx other than 401/403/404)."""

    status = BadRequest.status
    code = BadRequest.code


class ForgeRateLimited(ForgeError, Unavailable):
    """The forge's rate limit is spent (403/429 with ``Retry-After`` or ``X-RateLimit-Remaining: 0``).
    ``retry_after``: seconds until the forge accepts calls again (at least 1). Drivers never wait
    themselves: an interactive caller shows the error, background work tries again no sooner."""

    status = Unavailable.status
    code = Unavailable.code

    def __init__(self, forge: str, call: str, retry_after: float, *, forge_status: int = 429) -> None:
        self.retry_after = max(1.0, float(retry_after))
        super().__init__(forge, call, f"rate limited, retry in {int(self.retry_after + 0.999)} s",
                         forge_status=forge_status)


class WebhookRejected(Unauthorized):
    """A delivery whose signature is missing or wrong: answered 401, nothing created."""


def forge_error_for_status(forge: str, call: str, status: int, message: str) -> ForgeError:
    """The typed error of a forge's HTTP error answer."""
    cls: type[ForgeError]
    if status == 401:
        cls = ForgeUnauthorized
    elif status == 403:
        cls = ForgeForbidden
    elif status == 404:
        cls = ForgeNotFound
    elif status >= 500:
        cls = ForgeUnreachable
    elif 400 <= status < 500:
        cls = ForgeBadRequest
    else:
        cls = ForgeError
    return cls(forge, call, f"HTTP {status}: {message}" if message else f"HTTP {status}", forge_status=status)


# ---------------------------------------------------------------------------------------------
# Values


@attrs.frozen
class OAuth2Token:
    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(default="", repr=False)
    # None: never expires.
    expires_at: datetime | None = None


@attrs.frozen
class RemoteUser:
    id: str
    login: str
    email: str = ""
    avatar_url: str = ""


@attrs.frozen
class RepoInfo:
    id: str
    path: str  # owner/name
    html_url: str
    ssh_clone_url: str
    http_clone_url: str
    default_branch: str = ""


@attrs.frozen
class DeployKey:
    id: str
    title: str
    key: str
    read_only: bool = True


@attrs.frozen
class Webhook:
    id: str
    url: str
    events: tuple[str, ...] = ()


class EventKind(enum.StrEnum):
    PUSH = "push"
    TAG = "tag"
    PULL_REQUEST = "pull_request"


@attrs.frozen
class WebhookEvent:
    """A delivery the forge sent, parsed and verified (the reference's ``WebhookData``)."""

    kind: EventKind
    commit_sha: str
    ref: str  # refs/heads/<b>, refs/tags/<t>, refs/pull/<n>/head
    message: str
    sender: str
    repo_path: str  # owner/name of the repository the hook belongs to
    # The forge's id of that repository ("" when the payload has none): stays the same on a rename.
    repo_id: str = ""
    repo_web_url: str = ""
    ssh_url: str = ""
    http_url: str = ""
    delivery_id: str = ""
    commit_link: str = ""
    compare_link: str = ""
    branch: str = ""
    branch_link: str = ""
    tag: str = ""
    tag_link: str = ""
    # The PR number (what users see, and what refs/pull/<n>/head uses).
    pull_request_id: str = ""
    pull_request_link: str = ""
    # True when the PR's head is in another repository (a fork): no secrets for its runs.
    from_fork: bool = False


class CommitState(enum.StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


# Called by a driver after it refreshed an expired OAuth2 token, before it uses the new one, so the
# caller stores it on the linked account (the old refresh token may be invalid from now on).
TokenSaver = Callable[[OAuth2Token], Awaitable[None]]
# Called by a driver when the forge refused the account's token (401, even after a refresh), with
# the error's message, before the ``ForgeUnauthorized`` is raised: the caller marks the linked
# account as needing re-authorization.
TokenRefused = Callable[[str], Awaitable[None]]


@runtime_checkable
class ForgeDriver(Protocol):
    """One forge, one account. Paths are ``owner/name``."""

    forge: str

    async def __aenter__(self) -> ForgeDriver: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def close(self) -> None: ...

    # OAuth2 (remote sources with auth_type oauth2); need no account token.
    def oauth2_authorize_url(self, redirect_uri: str, state: str) -> str: ...
    async def oauth2_exchange_code(self, code: str, redirect_uri: str) -> OAuth2Token: ...
    async def oauth2_refresh(self, refresh_token: str) -> OAuth2Token: ...

    # Password remote sources: a personal access token made with the user's login and password.
    async def create_access_token(self, login: str, password: str, token_name: str) -> str: ...

    async def current_user(self) -> RemoteUser: ...
    async def list_user_repos(self) -> list[RepoInfo]: ...
    async def repo_info(self, repo_path: str) -> RepoInfo: ...

    async def create_deploy_key(self, repo_path: str, title: str, public_key: str) -> DeployKey:
        """Install a read-only deploy key; one with the same title and another key is replaced."""
        ...

    async def delete_deploy_key(self, repo_path: str, title: str) -> None: ...
    async def list_webhooks(self, repo_path: str) -> list[Webhook]: ...

    async def create_webhook(self, repo_path: str, url: str, secret: str) -> Webhook:
        """A hook for push, tag and pull request events; hooks with the same URL are replaced."""
        ...

    async def delete_webhook(self, repo_path: str, url: str) -> None:
        """Delete every hook whose URL is exactly ``url``."""
        ...

    async def get_file(self, repo_path: str, commit_sha: str, file_path: str) -> bytes:
        """The file at the commit; ``ForgeNotFound`` (a ``NotExist``) when it isn't there."""
        ...

    async def get_ref(self, repo_path: str, ref: str) -> str:
        """The commit sha a ref (``refs/heads/b``, ``refs/tags/t``) points to."""
        ...

    async def get_commit_message(self, repo_path: str, commit_sha: str) -> str: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
        """Verify the signature (``WebhookRejected`` if missing/wrong), then parse; None for a
        delivery that creates nothing (a closed PR, a deleted branch, an event not subscribed)."""
        ...

    async def set_commit_status(self, repo_path: str, commit_sha: str, *, state: CommitState, context: str,
                                description: str = "", target_url: str = "") -> None: ...
