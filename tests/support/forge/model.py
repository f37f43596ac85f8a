"""The emulated forge's state: users, tokens, OAuth2 apps, repositories (real bare git repos) with
their deploy keys, hooks, commit statuses and pull requests. Plain data guarded by one lock: the
test thread arranges it while the emulator's loop serves it."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs


@attrs.define
class User:
    id: int
    login: str
    password: str
    email: str
    full_name: str = ""


@attrs.define
class Token:
    value: str
    login: str
    name: str = ""
    scopes: tuple[str, ...] = ()
    # monotonic-free: wall clock seconds; 0 = never expires
    expires_at: float = 0.0


@attrs.define
class OAuthApp:
    client_id: str
    client_secret: str
    redirect_uri: str


@attrs.define
class Key:
    id: int
    title: str
    key: str
    read_only: bool = True

    @property
    def fingerprint(self) -> str:
        return "SHA256:" + hashlib.sha256(self.key.encode()).hexdigest()[:43]


@attrs.define
class Hook:
    id: int
    url: str
    secret: str
    events: tuple[str, ...]
    type: str = "gitea"
    content_type: str = "json"
    branch_filter: str = ""
    active: bool = True


@attrs.define
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str
    target_url: str
    creator: str


@attrs.define
class PullRequest:
    id: int
    number: int
    title: str
    author: str
    head_repo: str
    head_branch: str
    head_sha: str
    base_branch: str
    base_sha: str
    state: str = "open"


@attrs.define
class Repo:
    id: int
    owner: str
    name: str
    git_dir: Path
    default_branch: str = "main"
    fork_of: str | None = None
    keys: dict[int, Key] = attrs.field(factory=dict)
    hooks: dict[int, Hook] = attrs.field(factory=dict)
    statuses: list[Status] = attrs.field(factory=list)
    pulls: dict[int, PullRequest] = attrs.field(factory=dict)

    @property
    def path(self) -> str:
        return f"{self.owner}/{self.name}"


@attrs.define
class Delivery:
    """One webhook the emulator sent, with the agola answer."""

    id: str
    hook_url: str
    event: str
    body: bytes
    status: int = 0
    response: str = ""
    # time.monotonic() when sent and when answered (benchmarks)
    sent_at: float = 0.0
    answered_at: float = 0.0


class Forge:
    """All the state. ``url`` is the emulator's base URL; ``ssh_url`` builds clone URLs."""

    def __init__(self, repos_root: Path) -> None:
        self.lock = threading.RLock()
        self.url = ""
        # Which forge the emulator speaks: "gitea", "github" or "gitlab" (API, OAuth2 paths, webhooks).
        self.dialect = "gitea"
        self.ssh_user = "git"
        self.ssh_port = 0
        self.repos_root = repos_root
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.apps: dict[str, OAuthApp] = {}
        self.codes: dict[str, tuple[str, str, str]] = {}  # code -> (client_id, login, redirect_uri)
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> login
        self.repos: dict[str, Repo] = {}
        self.deliveries: list[Delivery] = []
        # call name (e.g. "create_hook") -> HTTP status to answer instead, for fault tests
        self.failures: dict[str, int] = {}
        self.oauth2_token_lifetime = 3600
        # Deliveries in flight at once (Gitea's queue has a few workers); 0 = all at once.
        self.delivery_workers = 0
        # Called after a deploy key changed (the SSH server rewrites its authorized_keys).
        self.keys_changed: Callable[[], None] | None = None
        self._ids = 0

    def on_keys_changed(self) -> None:
        if self.keys_changed is not None:
            self.keys_changed()

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def ssh_url(self, path: str) -> str:
        if self.ssh_port:
            return f"ssh://{self.ssh_user}@127.0.0.1:{self.ssh_port}/{path}.git"
        host = self.url.split("://", 1)[-1].split(":", 1)[0]
        return f"git@{host}:{path}.git"

    def new_token(self, login: str, name: str = "", scopes: tuple[str, ...] = (), lifetime: float = 0) -> Token:
        token = Token(secrets.token_hex(20), login, name, scopes, time.time() + lifetime if lifetime else 0.0)
        with self.lock:
            self.tokens[token.value] = token
        return token

    def user_for_token(self, value: str) -> User | None:
        with self.lock:
            token = self.tokens.get(value)
            if token is None or (token.expires_at and token.expires_at < time.time()):
                return None
            return self.users.get(token.login)

    def check_password(self, login: str, password: str) -> User | None:
        u = self.users.get(login)
        return u if u is not None and secrets.compare_digest(u.password, password) else None
