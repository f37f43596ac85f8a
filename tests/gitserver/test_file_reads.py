"""File reads at a commit through the long-lived ``git cat-file --batch`` of each repository: they
see later pushes and repacks, stream big files, and the processes end when idle."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from agola.services.gitserver.catfile import CatFilePool
from agola.services.gitserver.repos import git_env
from tests.gitserver.conftest import Gitserver, WorkTree, git
from tests.support.waiting import wait_for


async def raw(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as resp:
        return resp.status, await resp.read()


def cat_files(data_dir: Path) -> list[int]:
    """Pids of the `git cat-file --batch` processes reading repositories under ``data_dir``."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if cmdline[1:3] == [b"cat-file", b"--batch"] and f"GIT_DIR={data_dir}".encode() in environ:
            pids.append(int(pid))
    return pids


async def test_reads_see_new_pushes_by_ref_and_by_sha_and_after_a_repack(
        gitserver: Gitserver, worktree: WorkTree) -> None:
    remote = f"{gitserver.url}/repos/u/reads.git"
    first = await worktree.commit({".agola/config.yml": "one\n"})
    await git("push", "-q", remote, "main", cwd=worktree.path)
    async with aiohttp.ClientSession() as session:
        assert await raw(session, f"{remote}/raw/{first}/.agola/config.yml") == (200, b"one\n")
        assert await raw(session, f"{remote}/raw/main/.agola/config.yml") == (200, b"one\n")
        [reader] = cat_files(gitserver.data_dir)  # one process serves the repository

        # A new commit (loose objects), then one big enough to arrive as a pack.
        second = await worktree.commit({".agola/config.yml": "two\n"})
        await git("push", "-q", remote, "main", cwd=worktree.path)
        assert await raw(session, f"{remote}/raw/main/.agola/config.yml") == (200, b"two\n")
        third = await worktree.commit({f"many/{i}": f"{i}\n" for i in range(150)} | {".agola/config.yml": "3\n"})
        await git("push", "-q", remote, "main", cwd=worktree.path)
        assert await raw(session, f"{remote}/raw/{third}/.agola/config.yml") == (200, b"3\n")
        assert await raw(session, f"{remote}/raw/{third}/many/149") == (200, b"149\n")
        assert await raw(session, f"{remote}/raw/main/.agola/config.yml") == (200, b"3\n")

        # Everything repacked and the loose objects pruned under the running reader.
        await git("--git-dir", str(gitserver.data_dir / "u" / "reads.git"), "gc", "-q", "--prune=now",
                  cwd=worktree.path)
        assert await raw(session, f"{remote}/raw/{second}/.agola/config.yml") == (200, b"two\n")
        assert await raw(session, f"{remote}/raw/main/many/7") == (200, b"7\n")
        assert cat_files(gitserver.data_dir) == [reader]

        # Missing names and non-files still answer as before, and the reader keeps serving.
        assert (await raw(session, f"{remote}/raw/{third}/.agola/config.star"))[0] == 404
        assert (await raw(session, f"{remote}/raw/{third}/many"))[0] == 400
        assert (await raw(session, f"{remote}/raw/{third}/has space"))[0] == 404
        assert await raw(session, f"{remote}/raw/{first}/.agola/config.yml") == (200, b"one\n")


async def test_a_big_file_streams_whole_and_the_next_read_works(gitserver: Gitserver, worktree: WorkTree) -> None:
    remote = f"{gitserver.url}/repos/u/big.git"
    big = os.urandom(768 * 1024).hex().encode()  # 1.5 MiB: over what is read inline
    (worktree.path / "big.bin").write_bytes(big)
    sha = await worktree.commit({"small.txt": "small\n"})
    await git("push", "-q", remote, "main", cwd=worktree.path)
    async with aiohttp.ClientSession() as session:
        assert await raw(session, f"{remote}/raw/{sha}/big.bin") == (200, big)
        assert await raw(session, f"{remote}/raw/{sha}/small.txt") == (200, b"small\n")
        assert await raw(session, f"{remote}/raw/{sha}/big.bin") == (200, big)


async def test_idle_readers_end_and_at_most_max_processes_live(tmp_path: Path) -> None:
    repos = []
    for name in ("a", "b", "c"):
        repo = tmp_path / f"{name}.git"
        await git("init", "-q", "--bare", str(repo), cwd=tmp_path)
        repos.append(repo)
    pool = CatFilePool(git_env(), max_processes=2, idle=0.2)
    try:
        for repo in repos:
            assert await pool.read(repo, "HEAD:nothing") is None
        assert len(pool) == 2  # the least recently used one was ended
        await wait_for(lambda: len(pool) == 0, message="idle readers ended")
        await wait_for(lambda: not cat_files(tmp_path), message="their processes are gone")
        assert await pool.read(repos[0], "HEAD:nothing") is None  # a new one starts on demand
        assert len(cat_files(tmp_path)) == 1
    finally:
        await pool.close()
    assert not cat_files(tmp_path)


async def test_the_push_ref_advertisement_is_what_http_backend_sends(gitserver: Gitserver, worktree: WorkTree) -> None:
    """Answered by `git receive-pack` alone (one git process instead of two), byte for byte what
    `git http-backend` answers, in protocol v0 and v1."""
    remote = f"{gitserver.url}/repos/u/adv.git"
    await worktree.commit({"a": "1"})
    await git("push", "-q", remote, "main", cwd=worktree.path)
    await git("push", "-q", remote, "main:refs/heads/other", cwd=worktree.path)
    for protocol in ("", "version=1"):
        async with aiohttp.ClientSession() as session:
            headers = {"Git-Protocol": protocol} if protocol else {}
            async with session.get(f"{remote}/info/refs?service=git-receive-pack", headers=headers) as resp:
                ours, content_type = await resp.read(), resp.headers["Content-Type"]
        env = {"GIT_PROJECT_ROOT": str(gitserver.data_dir), "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": "GET",
               "PATH_INFO": "/u/adv.git/info/refs", "QUERY_STRING": "service=git-receive-pack",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "PATH": os.environ["PATH"]}
        if protocol:
            env["GIT_PROTOCOL"] = protocol
        proc = await asyncio.create_subprocess_exec("git", "http-backend", env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        cgi_headers, _, theirs = out.partition(b"\r\n\r\n")
        assert ours == theirs and b"refs/heads/other" in ours
        assert f"Content-Type: {content_type}".encode() in cgi_headers
