"""Forge drivers: the git hosts behind remote sources (spec §5, §6.3-6.5, §6.10).

The entry point is::

    driver = driver_for(remote_source, linked_account, on_token_refresh=save)
    async with driver:
        await driver.set_commit_status("owner/repo", sha, state=CommitState.PENDING,
                                       context="agola/proj/run", description="...", target_url="...")

``driver_for(remote_source, linked_account=None, *, on_token_refresh=None)`` returns the
``ForgeDriver`` of the remote source's type, authenticated as the linked account (its
``user_access_token`` for password sources, its OAuth2 access token otherwise; no account: only
the OAuth2 and token-creation calls work). An OAuth2 token that expires within 5 minutes is
refreshed before the next call and handed to ``on_token_refresh`` (an ``OAuth2Token``) to be stored
on the linked account. Unsupported types raise ``BadRequest``.

The interface (``ForgeDriver``), values and typed errors are in ``agola.forges.base``; one module
per forge (``gitea.py``, ``github.py``, ``gitlab.py``; the last two share ``rest.py``).
"""

from __future__ import annotations

from agola.errors import BadRequest
from agola.forges.base import (
    CommitState,
    DeployKey,
    EventKind,
    ForgeBadRequest,
    ForgeDriver,
    ForgeError,
    ForgeForbidden,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnreachable,
    OAuth2Token,
    RemoteUser,
    RepoInfo,
    TokenRefused,
    TokenSaver,
    Webhook,
    WebhookEvent,
    WebhookRejected,
)
from agola.types.configstore import LinkedAccount, RemoteSource, RemoteSourceAuthType, RemoteSourceType


def account_token(remote_source: RemoteSource, linked_account: LinkedAccount | None) -> OAuth2Token | None:
    """The credentials a linked account holds for its remote source."""
    if linked_account is None:
        return None
    if remote_source.auth_type == RemoteSourceAuthType.PASSWORD:
        return OAuth2Token(access_token=linked_account.user_access_token)
    return OAuth2Token(
        access_token=linked_account.oauth2_access_token,
        refresh_token=linked_account.oauth2_refresh_token,
        expires_at=linked_account.oauth2_access_token_expires_at,
    )


def driver_for(remote_source: RemoteSource, linked_account: LinkedAccount | None = None, *,
               on_token_refresh: TokenSaver | None = None, on_token_refused: TokenRefused | None = None) -> ForgeDriver:
    token = account_token(remote_source, linked_account)
    if remote_source.type == RemoteSourceType.GITEA:
        from agola.forges.gitea import GiteaDriver

        return GiteaDriver(remote_source, token, on_token_refresh=on_token_refresh, on_token_refused=on_token_refused)
    if remote_source.type == RemoteSourceType.GITHUB:
        from agola.forges.github import GitHubDriver

        return GitHubDriver(remote_source, token, on_token_refresh=on_token_refresh, on_token_refused=on_token_refused)
    if remote_source.type == RemoteSourceType.GITLAB:
        from agola.forges.gitlab import GitLabDriver

        return GitLabDriver(remote_source, token, on_token_refresh=on_token_refresh, on_token_refused=on_token_refused)
    raise BadRequest(f"remote source type {remote_source.type!r} is not supported (supported: gitea, github, gitlab)")


__all__ = [
    "CommitState",
    "DeployKey",
    "EventKind",
    "ForgeBadRequest",
    "ForgeDriver",
    "ForgeError",
    "ForgeForbidden",
    "ForgeNotFound",
    "ForgeRateLimited",
    "ForgeUnauthorized",
    "ForgeUnreachable",
    "OAuth2Token",
    "RemoteUser",
    "RepoInfo",
    "TokenRefused",
    "TokenSaver",
    "Webhook",
    "WebhookEvent",
    "WebhookRejected",
    "account_token",
    "driver_for",
]
