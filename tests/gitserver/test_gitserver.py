"""The gitserver with the real git client: push, clone, fetch, read a file at a commit, and abuse."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.gitserver.conftest import Gitserver, WorkTree, git, running_gitserver


async def get(url: str | URL, **kwargs: object) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, **kwargs) as resp:  # type: ignore[arg-type]
            return resp.status, await resp.read(), resp.headers


async def test_health_names_the_role(gitserver: Gitserver) -> None:
    status, body, _ = await get(f"{gitserver.url}/health")
    assert status == 200
    assert b'"role":"gitserver"' in body and b'"version"' in body


async def test_first_push_creates_the_repo_then_clone_and_read_files(
        gitserver: Gitserver, worktree: WorkTree, tmp_path: Path) -> None:
    first = await worktree.commit({".agola/config.yml": "version: v0\n", "README": "one\n"})
    second = await worktree.commit({".agola/config.yml": "version: v0\nruns: []\n"})
    remote = f"{gitserver.url}/repos/user01/repo01.git"
    await git("push", "-q", remote, "main", cwd=worktree.path)
    assert (gitserver.data_dir / "user01" / "repo01.git" / "HEAD").is_file()

    # The reference layout without the /repos prefix addresses the same repository.
    await git("clone", "-q", f"{gitserver.url}/user01/repo01.git", "clone", cwd=tmp_path)
    assert (tmp_path / "clone" / "README").read_text() == "one\n"
    assert (tmp_path / "clone" / ".agola" / "config.yml").read_text() == "version: v0\nruns: []\n"

    status, body, _headers = await get(f"{remote}/raw/{first}/.agola/config.yml")
    assert (status, body) == (200, b"version: v0\n")
    status, body, _ = await get(f"{remote}/raw/{second}/.agola/config.yml")
    assert (status, body) == (200, b"version: v0\nruns: []\n")
    status, body, _ = await get(f"{remote}/raw/main/README")
    assert (status, body) == (200, b"one\n")


async def test_fetch_sees_later_pushes_and_protocol_v2_works(
        gitserver: Gitserver, worktree: WorkTree, tmp_path: Path) -> None:
    remote = f"{gitserver.url}/repos/u/r.git"
    await worktree.commit({"a": "1"})
    await git("push", "-q", remote, "main", cwd=worktree.path)
    await git("-c", "protocol.version=2", "clone", "-q", remote, "clone", cwd=tmp_path)
    head = await worktree.commit({"a": "2"})
    await git("push", "-q", remote, "main", cwd=worktree.path)
    await git("-c", "protocol.version=2", "pull", "-q", "--ff-only", cwd=tmp_path / "clone")
    _, out = await git("rev-parse", "HEAD", cwd=tmp_path / "clone")
    assert out.strip() == head


async def test_large_push_streams_through(gitserver: Gitserver, worktree: WorkTree, tmp_path: Path) -> None:
    # Bigger than git's http.postBuffer (1 MiB): git sends a chunked body without Content-Length.
    blob = os.urandom(3 * 1024 * 1024).hex()
    await worktree.commit({"big.txt": blob})
    remote = f"{gitserver.url}/repos/u/big.git"
    await git("push", "-q", remote, "main", cwd=worktree.path)
    await git("clone", "-q", remote, "clone", cwd=tmp_path)
    assert (tmp_path / "clone" / "big.txt").read_text() == blob


async def test_push_over_max_push_size_is_refused_with_a_message_git_shows(
        worktree: WorkTree, tmp_path: Path) -> None:
    async with running_gitserver(tmp_path / "gitserver", "  maxPushSize: 1048576\n") as server:
        remote = f"{server.url}/repos/u/limited.git"
        await worktree.commit({"small.txt": "fits\n"})
        await git("push", "-q", remote, "main", cwd=worktree.path)
        # Random hex does not compress below 1 MiB: the pack is about 1.5 MiB.
        await worktree.commit({"big.txt": os.urandom(2 * 1024 * 1024).hex()})
        rc, out = await git("push", remote, "main", cwd=worktree.path, check=False)
        assert rc != 0
        assert "pack exceeds maximum allowed size" in out, out
        # Nothing of the refused push was kept: the branch is still at the first commit.
        await git("clone", "-q", remote, "clone", cwd=tmp_path)
        assert (tmp_path / "clone" / "small.txt").read_text() == "fits\n"
        assert not (tmp_path / "clone" / "big.txt").exists()


async def test_gzip_request_body_and_git_protocol_header(gitserver: Gitserver, worktree: WorkTree) -> None:
    sha = await worktree.commit({"a": "1"})
    remote = f"{gitserver.url}/repos/u/gz.git"
    await git("push", "-q", remote, "main", cwd=worktree.path)
    # A protocol v2 ls-refs request, gzip-compressed as git does for large negotiation bodies.
    body = b"0014command=ls-refs\n" + b"0001" + b"0000"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{remote}/git-upload-pack", data=gzip.compress(body),
            headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip",
                     "Git-Protocol": "version=2"},
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/x-git-upload-pack-result"
            out = await resp.read()
    assert f"{sha} refs/heads/main".encode() in out


async def test_missing_repository_is_404(gitserver: Gitserver, tmp_path: Path) -> None:
    status, body, _ = await get(f"{gitserver.url}/repos/u/missing.git/info/refs?service=git-upload-pack")
    assert status == 404 and b"does not exist" in body
    rc, _out = await git("clone", f"{gitserver.url}/repos/u/missing.git", "c", cwd=tmp_path, check=False)
    assert rc != 0
    status, _, _ = await get(f"{gitserver.url}/repos/u/missing.git/raw/main/README")
    assert status == 404
    # Fetching never creates a repository; only pushing does.
    assert not (gitserver.data_dir / "u" / "missing.git").exists()


async def test_raw_file_errors(gitserver: Gitserver, worktree: WorkTree) -> None:
    sha = await worktree.commit({"dir/file": "x"})
    remote = f"{gitserver.url}/repos/u/raw.git"
    await git("push", "-q", remote, "main", cwd=worktree.path)
    assert (await get(f"{remote}/raw/{sha}/nope"))[0] == 404
    assert (await get(f"{remote}/raw/{'0' * 40}/dir/file"))[0] == 404
    assert (await get(f"{remote}/raw/{sha}/dir"))[0] == 400  # a tree, not a file
    assert (await get(f"{remote}/raw/{sha}"))[0] == 400  # no file path
    for rev in ("-x", "main~1", "main@{0}", "a..b", "HEAD%5E"):
        status, _, _ = await get(URL(f"{remote}/raw/{rev}/dir/file", encoded=True))
        assert status == 400, rev
    status, _, _ = await get(URL(f"{remote}/raw/{sha}/dir/%2e%2e/dir/file", encoded=True))
    assert status == 400


@pytest.mark.parametrize("path", [
    "/repos/..%2f..%2fetc.git/info/refs?service=git-receive-pack",
    "/repos/u/%2e%2e/%2e%2e/outside.git/info/refs?service=git-receive-pack",
    "/%2ftmp/abs.git/info/refs?service=git-receive-pack",
    "//tmp/abs.git/info/refs?service=git-receive-pack",
    "/repos/u/.hidden.git/info/refs?service=git-receive-pack",
    "/repos/u/-x.git/info/refs?service=git-receive-pack",
    "/repos/u%20v/r.git/info/refs?service=git-receive-pack",
    "/repos/u/.git/info/refs?service=git-receive-pack",
])
async def test_unsafe_repository_paths_are_400(gitserver: Gitserver, tmp_path: Path, path: str) -> None:
    status, body, _ = await get(URL(gitserver.url + path, encoded=True))
    assert status == 400, body
    assert b"wrong repository path" in body
    # Nothing was created outside the data dir (tmp_path holds it).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gitserver"]


async def test_push_to_a_traversal_path_fails_cleanly(gitserver: Gitserver, worktree: WorkTree, tmp_path: Path) -> None:
    await worktree.commit({"a": "1"})
    rc, _ = await git("push", f"{gitserver.url}/repos/u/..%2F..%2Fescape.git", "main", cwd=worktree.path, check=False)
    assert rc != 0
    assert not (tmp_path / "escape.git").exists()
    assert not (gitserver.data_dir.parent.parent / "escape.git").exists()


async def test_only_smart_http_endpoints(gitserver: Gitserver) -> None:
    assert (await get(f"{gitserver.url}/repos/u/r.git/info/refs"))[0] == 400
    assert (await get(f"{gitserver.url}/repos/u/r.git/HEAD"))[0] == 404
    assert (await get(f"{gitserver.url}/repos/nothing-here"))[0] == 404
