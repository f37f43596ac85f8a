"""A forge emulator for the tests: ``ForgeEmulator(tmp_dir).start()`` (or ``GiteaEmulator``) for
Gitea, ``ForgeEmulator(tmp_dir, dialect="github" | "gitlab")`` for the same emulator speaking GitHub's
REST API v3 (Enterprise layout, ``/api/v3``) or GitLab's API v4, their OAuth2 endpoints and their
webhooks (``github_dialect.py``, ``gitlab_dialect.py``) on the same repositories and sshd.

In the Gitea dialect it serves Gitea's REST API v1 and OAuth2 endpoints (the real JSON shapes, ``shapes.py``) on
127.0.0.1, holds real bare git repositories served over smart HTTP (``git http-backend``) and over
SSH by a real ``sshd`` (deploy keys only, ``sshd.py``), sends real webhooks (payload, headers and
HMAC signature as Gitea) after every push the test makes with the real ``git`` client, and records
commit statuses. It runs in its own thread and event loop, so sync tests (the CLI) and async
tests use it alike. Arrange its world with the methods below; read back ``statuses()``,
``deliveries``, ``repo(...).keys`` / ``.hooks``. Fault injection: ``forge.failures[call] = 500``
(call names in ``app.build_app``; ``"*"`` for every API call).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from tests.support.forge import gitops
from tests.support.forge.app import build_app
from tests.support.forge.hooks import HOOKS_KEY, pull_request_event, update_pull_ref
from tests.support.forge.model import Delivery, Forge, OAuthApp, PullRequest, Repo, Status, User
from tests.support.forge.sshd import SSHServer, available
from tests.support.services import free_port

T = TypeVar("T")

DIALECTS = ("gitea", "github", "gitlab")

__all__ = ["DIALECTS", "Delivery", "ForgeEmulator", "GiteaEmulator", "OAuthApp", "PullRequest", "Repo", "Status", "User",
           "ssh_available"]

ssh_available = available


class ForgeEmulator:
    def __init__(self, work: Path, *, ssh: bool = True, dialect: str = "gitea") -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown forge dialect {dialect!r} (one of {', '.join(DIALECTS)})")
        self.work = work
        self.forge = Forge(work / "repositories")
        self.forge.dialect = dialect
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.forge.url = self.url
        self.sshd = SSHServer(self.forge, work / "sshd") if ssh else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="gitea-emulator")
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> ForgeEmulator:
        self.forge.repos_root.mkdir(parents=True, exist_ok=True)
        if self.sshd is not None:
            self.sshd.start()
        self._thread.start()

        async def start() -> None:
            self._app = build_app(self.forge)
            self._runner = web.AppRunner(self._app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self.run(start())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if self.sshd is not None:
            self.sshd.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the emulator's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def ssh_host_key(self) -> str:
        """The server's host key as a known_hosts line (for a remote source's ``ssh_host_key``)."""
        return self.sshd.host_key_line if self.sshd is not None else ""

    # -------------------------------------------------------------------------------- arrange

    def add_user(self, login: str, password: str = "", email: str = "") -> User:
        user = User(self.forge.next_id(), login, password or secrets.token_hex(8), email or f"{login}@example.com",
                    full_name=login.title())
        with self.forge.lock:
            self.forge.users[login] = user
        return user

    def token_for(self, login: str, lifetime: float = 0) -> str:
        return self.forge.new_token(login, lifetime=lifetime).value

    def add_oauth_app(self, redirect_uri: str) -> OAuthApp:
        app = OAuthApp(secrets.token_hex(8), secrets.token_hex(16), redirect_uri)
        with self.forge.lock:
            self.forge.apps[app.client_id] = app
        return app

    def create_repo(self, owner: str, name: str, default_branch: str = "main") -> Repo:
        repo = Repo(self.forge.next_id(), owner, name, self.forge.repos_root / owner / f"{name}.git",
                    default_branch=default_branch)
        gitops.init_bare(repo.git_dir, default_branch)
        with self.forge.lock:
            self.forge.repos[repo.path] = repo
        return repo

    def fork_repo(self, path: str, owner: str) -> Repo:
        source = self.forge.repos[path]
        fork = Repo(self.forge.next_id(), owner, source.name, self.forge.repos_root / owner / f"{source.name}.git",
                    default_branch=source.default_branch, fork_of=path)
        fork.git_dir.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(source.git_dir), str(fork.git_dir)], check=True)
        gitops.git(fork.git_dir, "config", "http.receivepack", "true")
        with self.forge.lock:
            self.forge.repos[fork.path] = fork
        return fork

    def repo(self, path: str) -> Repo:
        return self.forge.repos[path]

    def http_url(self, path: str, login: str = "") -> str:
        """The HTTP clone URL; with ``login`` the user's credentials are in it (to push)."""
        if not login:
            return f"{self.url}/{path}.git"
        user = self.forge.users[login]
        return f"http://{user.login}:{user.password}@127.0.0.1:{self.port}/{path}.git"

    def open_pull_request(self, base_path: str, head_path: str, head_branch: str, title: str,
                          author: str = "") -> PullRequest:
        """Open a PR (from a branch of ``head_path``, a fork or the same repository) and send its
        ``pull_request`` ``opened`` webhook to the base repository's hooks."""
        base, head = self.forge.repos[base_path], self.forge.repos[head_path]
        head_sha = gitops.refs(head.git_dir)[f"refs/heads/{head_branch}"]
        base_sha = gitops.refs(base.git_dir).get(f"refs/heads/{base.default_branch}", gitops.ZERO_SHA)
        number = len(base.pulls) + 1
        pr = PullRequest(self.forge.next_id(), number, title, author or head.owner, head.path, head_branch,
                         head_sha, base.default_branch, base_sha)
        update_pull_ref(self.forge, base, head, pr)
        with self.forge.lock:
            base.pulls[number] = pr
        self._send([pull_request_event(self.forge, base, pr, "opened")])
        return pr

    def _send(self, events: list[Any]) -> None:
        assert self._app is not None
        self.run(self._app[HOOKS_KEY].send_all(events))

    # ------------------------------------------------------------------------------- observe

    @property
    def deliveries(self) -> list[Delivery]:
        with self.forge.lock:
            return list(self.forge.deliveries)

    def redeliver(self, delivery_id: str) -> None:
        """Send a recorded delivery again, same id and body (what "Redeliver" does on Gitea)."""
        assert self._app is not None
        old = next(d for d in self.deliveries if d.id == delivery_id)
        for repo in self.forge.repos.values():
            for hook in repo.hooks.values():
                if hook.url == old.hook_url:
                    again = Delivery(old.id, old.hook_url, old.event, old.body)
                    with self.forge.lock:
                        self.forge.deliveries.append(again)
                    self.run(self._app[HOOKS_KEY].deliver(hook, again, old.event))
                    return

    def run_git_rev(self, path: str, rev: str) -> str:
        """The commit a revision of a repository points to."""
        return gitops.git(self.forge.repos[path].git_dir, "rev-parse", f"{rev}^{{commit}}").strip()

    def statuses(self, path: str, sha: str) -> list[Status]:
        with self.forge.lock:
            return [s for s in self.forge.repos[path].statuses if s.sha == sha]


# The name the Gitea-only tests know it by (the default dialect is Gitea).
GiteaEmulator = ForgeEmulator
