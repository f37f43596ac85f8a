"""The Gitea emulator (one per module: starting sshd costs) and a webhook receiver."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, RoleStack
from tests.support.forge import GiteaEmulator, ssh_available
from tests.support.services import free_port


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaEmulator]:
    emu = GiteaEmulator(tmp_path_factory.mktemp("gitea"), ssh=ssh_available()).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleStack]:
    """The control plane (no executor): what linked accounts and projects need."""
    r = RoleStack(tmp_path_factory.mktemp("stack"))
    r.start()
    try:
        yield r
    finally:
        r.stop()


def cli(stack: RoleStack, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args])


def new_user(stack: RoleStack, name: str) -> str:
    assert cli(stack, ADMIN, "user", "create", name).exit_code == 0
    return cli(stack, ADMIN, "user", "token", "create", name, "t").stdout.strip()


def project_runs(stack: RoleStack, token: str, project: str) -> list[dict[str, Any]]:
    """Every run of a project, newest first (the API answers at most 40 a page)."""
    out: list[dict[str, Any]] = []
    while True:
        page = ["--start", out[-1]["id"]] if out else []
        res = cli(stack, token, "run", "list", "--project", project, "--limit", "40", *page, "--json")
        assert res.exit_code == 0, res.output
        rows = list(json.loads(res.stdout))
        out.extend(rows)
        if len(rows) < 40:
            return out


@attrs.define
class Received:
    headers: dict[str, str]
    body: bytes


@attrs.define
class HookReceiver:
    """Records the webhooks it gets (served on the emulator's loop); answers ``status``."""

    url: str
    received: list[Received] = attrs.field(factory=list)
    status: int = 200


@pytest.fixture(scope="module")
def receiver(emulator: GiteaEmulator) -> Iterator[HookReceiver]:
    port = free_port()
    rec = HookReceiver(f"http://127.0.0.1:{port}/webhooks")

    async def handle(request: web.Request) -> web.Response:
        rec.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=rec.status)

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/webhooks", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = emulator.run(start())
    yield rec
    emulator.run(runner.cleanup())


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    import os
    import subprocess

    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def work_tree(path: Path, files: dict[str, str], message: str = "first") -> Path:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", str(path))
    git("config", "user.email", "dev@example.com", cwd=path)
    git("config", "user.name", "Dev", cwd=path)
    commit(path, files, message)
    return path


def commit(path: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def follow_authorize(url: str, login: str, password: str) -> str:
    """What a browser does at the forge: sign in, grant, get redirected. Returns the redirect."""
    req = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(req)
    assert info.value.code == 302
    return str(info.value.headers["Location"])
