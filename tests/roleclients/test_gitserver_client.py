"""``GitserverClient`` against the real gitserver role: raw files of a pushed commit, typed errors,
and the smart HTTP relay the gateway's ``/repos`` proxy uses."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest, NotExist, Unavailable
from agola.roleclients.gitserver import GitserverClient
from tests.gitserver.conftest import Gitserver, WorkTree, git
from tests.support.services import free_port


async def test_files_and_relay(gitserver: Gitserver, worktree: WorkTree) -> None:
    sha = await worktree.commit({".agola/config.yml": "runs: []\n", "dir/file": "x"})
    await git("push", "-q", f"{gitserver.url}/repos/u1/r1.git", "main", cwd=worktree.path)
    async with GitserverClient(gitserver.url) as client:
        assert await client.read_file("u1/r1", sha, ".agola/config.yml") == b"runs: []\n"
        assert await client.read_file("u1/r1", "main", "dir/file") == b"x"
        with pytest.raises(NotExist):
            await client.read_file("u1/r1", sha, "missing")
        with pytest.raises(NotExist):
            await client.read_file("u1/nope", sha, "dir/file")
        with pytest.raises(BadRequest):
            await client.read_file("u1/r1", sha, "dir")  # a tree, not a file
        # The relay hands back any answer as is, errors included.
        resp = await client.relay("GET", "u1/r1.git/info/refs", params={"service": "git-upload-pack"}, headers={})
        async with resp:
            assert resp.status == 200 and b"refs/heads/main" in await resp.read()
        resp = await client.relay("GET", "u1/nope.git/info/refs", params={"service": "git-upload-pack"}, headers={})
        async with resp:
            assert resp.status == 404


async def test_unreachable_gitserver_is_unavailable() -> None:
    async with GitserverClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(Unavailable):
            await client.read_file("u/r", "main", "f")
