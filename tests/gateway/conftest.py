"""A gateway on loopback in front of real roles: runservice (embedded storage), gitserver, and the
configstore role over HTTP. Some tests also run with the configstore's in-process
``ActionHandler`` handed to the gateway, which implements the same ``ConfigstoreAPI`` as the HTTP
``ConfigstoreClient`` (checked in test_configstore_client.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agola.client import GatewayClient
from agola.config import parse_config
from agola.roleclients.runservice import RunserviceClient
from agola.services.gateway.role import GatewayRole
from agola.services.gitserver.role import GitserverRole
from agola.services.role import RoleHost
from agola.services.runservice.core import RunserviceOptions
from agola.services.runservice.role import RunserviceRole
from agola.storage.datamanager import DataManagerOptions
from tests.configstore.stack import FAST as CS_FAST
from tests.configstore.stack import Stack as ConfigstoreStack
from tests.support.services import INTERNAL_API_TOKEN, TOKEN_LINE, free_port

ADMIN_TOKEN = "admintoken-for-tests-0123456789abcdef"

FAST = RunserviceOptions(
    scheduler_interval=0.3,
    cleaner_interval=0.3,
    task_updater_interval=1.0,
    fetcher_interval=0.3,
    archiver_interval=0.3,
    heartbeat_expiry=timedelta(seconds=60),
    lock_ttl=5.0,
    executor_timeout=3.0,
    max_backoff=0.5,
    datamanager=DataManagerOptions(checkpoint_interval=1.0, min_checkpoint_wals=20, sync_interval=0.5,
                                   lock_ttl=5.0, max_backoff=0.5),
)


class Env:
    """The running stack and helpers to act as the admin or as users."""

    def __init__(self, url: str, rs_url: str, gitserver_url: str, role: GatewayRole, configstore: Any) -> None:
        self.url = url
        self.rs_url = rs_url
        self.gitserver_url = gitserver_url
        self.role = role
        self.configstore = configstore
        self.clients: list[GatewayClient] = []
        self.rs = RunserviceClient(rs_url, token=INTERNAL_API_TOKEN)

    def client(self, token: str = "") -> GatewayClient:
        c = GatewayClient(self.url, token)
        self.clients.append(c)
        return c

    @property
    def admin(self) -> GatewayClient:
        return self.client(ADMIN_TOKEN)

    async def user(self, name: str) -> tuple[Any, GatewayClient]:
        """Create a user with a token; returns (UserResponse, client acting as that user)."""
        admin = self.admin
        user = await admin.create_user(name)
        token = await admin.create_user_token(name, "default")
        return user, self.client(token)

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        await self.rs.close()


@pytest.fixture
async def env(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The stack; ``configstore`` is the real configstore role over HTTP (the gateway's
    ``ConfigstoreClient``), or with ``indirect`` param ``"inprocess"`` the configstore's
    ``ActionHandler`` handed to the gateway directly (same ``ConfigstoreAPI``)."""
    mode = getattr(request, "param", "http")
    ports = {name: free_port() for name in ("runservice", "gitserver", "gateway", "configstore")}
    config = parse_config(
        f"dataDir: {tmp_path / 'data'}\n{TOKEN_LINE}"
        f"runservice: {{web: {{listenAddress: '127.0.0.1:{ports['runservice']}'}}}}\n"
        f"configstore: {{web: {{listenAddress: '127.0.0.1:{ports['configstore']}'}}}}\n"
        f"gitserver: {{web: {{listenAddress: '127.0.0.1:{ports['gitserver']}'}}}}\n"
        "gateway:\n"
        f"  adminToken: {ADMIN_TOKEN}\n"
        f"  web: {{listenAddress: '127.0.0.1:{ports['gateway']}'}}\n"
    )
    config.validate({"runservice", "configstore", "gitserver", "gateway"})
    cs_stack = None
    if mode == "inprocess":
        cs_stack = ConfigstoreStack("embedded", tmp_path / "cs", request)
        configstore: Any = (await cs_stack.open()).cs
        roles: list[Any] = []
    else:
        from agola.services.configstore.role import ConfigstoreRole

        roles = [ConfigstoreRole(config, datamanager_options=CS_FAST, persist_readdb=False)]
        configstore = None
    gateway = GatewayRole(config, configstore=configstore)
    host = RoleHost([RunserviceRole(config, options=FAST), *roles, GitserverRole(config), gateway],
                    shutdown_timeout=2)
    await host.start()
    assert gateway.services is not None
    e = Env(f"http://127.0.0.1:{ports['gateway']}", f"http://127.0.0.1:{ports['runservice']}",
            f"http://127.0.0.1:{ports['gitserver']}", gateway, gateway.services.configstore)
    try:
        yield e
    finally:
        await e.close()
        await _bounded("roles", host.stop())
        if cs_stack is not None:
            await cs_stack.close()


async def _bounded(what: str, aw: Any, timeout: float = 3.0) -> None:
    """Work around a runservice stop() that hangs: its loop runner awaits ``asyncio.wait_for``,
    which under Python 3.11 can swallow the cancellation stop() sends (runservice/loops/runner.py;
    reported to its owner). If stopping takes too long, cancel the stuck loop tasks again."""
    task = asyncio.ensure_future(aw)
    for _ in range(10):
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if done:
            task.result()
            return
        for t in asyncio.all_tasks():
            if t is not task and not t.done() and t.get_name().startswith("runservice-"):
                t.cancel()
    raise AssertionError(f"teardown of {what} is stuck")


# --- git helpers --------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "tester", "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "tester", "GIT_COMMITTER_EMAIL": "tester@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}


async def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{text}")
    return proc.returncode or 0, text


async def make_repo(path: Path, files: dict[str, str]) -> str:
    """A work tree with one commit of ``files``; returns the commit sha."""
    path.mkdir(parents=True, exist_ok=True)
    await git("init", "-q", "-b", "master", cwd=path)
    for name, text in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    await git("add", "-A", cwd=path)
    await git("commit", "-q", "-m", "initial", cwd=path)
    _, sha = await git("rev-parse", "HEAD", cwd=path)
    return sha.strip()


async def push(path: Path, url: str, dest: str, token: str = "", check: bool = True) -> tuple[int, str]:
    env = {}
    if token:
        env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
               "GIT_CONFIG_VALUE_0": f"Authorization: token {token}"}
    return await git("push", "--force", url, f"HEAD:{dest}", cwd=path, check=check, env=env)
