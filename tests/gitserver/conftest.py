"""A real gitserver role on a free loopback port, and a local git work tree to push from."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from agola.config import parse_config
from agola.services.gitserver.role import GitserverRole
from agola.services.role import RoleHost
from tests.support.services import free_port


@attrs.frozen
class Gitserver:
    url: str
    data_dir: Path


@contextlib.asynccontextmanager
async def running_gitserver(data: Path, extra: str = "") -> AsyncIterator[Gitserver]:
    """A gitserver role on a free port; ``extra``: more ``gitserver`` keys (indented YAML lines)."""
    port = free_port()
    config = parse_config(f"gitserver:\n  dataDir: {data}\n  web: {{listenAddress: '127.0.0.1:{port}'}}\n"
                          + extra)
    config.validate({"gitserver"})
    host = RoleHost([GitserverRole(config)], shutdown_timeout=5)
    await host.start()
    try:
        yield Gitserver(url=f"http://127.0.0.1:{port}", data_dir=data)
    finally:
        await host.stop()


@pytest.fixture
async def gitserver(tmp_path: Path) -> AsyncIterator[Gitserver]:
    async with running_gitserver(tmp_path / "gitserver") as server:
        yield server


GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "tester", "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "tester", "GIT_COMMITTER_EMAIL": "tester@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}


async def git(*args: str, cwd: Path, check: bool = True) -> tuple[int, str]:
    """Run the real git client; return (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env={**os.environ, **GIT_ENV},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{text}")
    return proc.returncode or 0, text


@attrs.define
class WorkTree:
    path: Path

    async def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        await git("add", "-A", cwd=self.path)
        await git("commit", "-q", "-m", message, cwd=self.path)
        _, sha = await git("rev-parse", "HEAD", cwd=self.path)
        return sha.strip()


@pytest.fixture
async def worktree(tmp_path: Path) -> WorkTree:
    path = tmp_path / "work"
    path.mkdir()
    await git("init", "-q", "-b", "main", cwd=path)
    return WorkTree(path)
