"""The direct-run snapshot with the real git CLI: what it contains, and what it leaves alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agola.cli import _git
from tests.gitserver.conftest import running_gitserver


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    sh(r, "init", "-q", "-b", "main")
    sh(r, "config", "user.name", "Dev")
    sh(r, "config", "user.email", "dev@example.com")
    (r / ".gitignore").write_text("*.log\nbuild/\n")
    (r / "tracked.txt").write_text("v1\n")
    (r / "gone.txt").write_text("bye\n")
    sh(r, "add", ".")
    sh(r, "commit", "-q", "-m", "first")
    return r


def state(repo: Path) -> tuple[str, str, str, bytes]:
    """What the user can see: HEAD, branch, status and the raw index."""
    index = (repo / ".git" / "index").read_bytes()
    return sh(repo, "rev-parse", "HEAD"), sh(repo, "symbolic-ref", "HEAD"), sh(repo, "status", "--porcelain"), index


def test_snapshot_takes_the_work_tree_and_leaves_index_head_and_files_alone(repo: Path) -> None:
    (repo / "tracked.txt").write_text("v2 unstaged\n")
    (repo / "staged.txt").write_text("staged\n")
    sh(repo, "add", "staged.txt")
    (repo / "new.txt").write_text("untracked\n")
    (repo / "gone.txt").unlink()
    (repo / "debug.log").write_text("ignored\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("ignored too\n")
    before = state(repo)

    snap = _git.save_snapshot(str(repo / "build"))  # from a subdirectory: the whole tree counts

    assert state(repo) == before
    assert (repo / "tracked.txt").read_text() == "v2 unstaged\n"
    files = set(_git.list_files(snap.root, snap.commit_sha))
    assert files == {".gitignore", "tracked.txt", "staged.txt", "new.txt"}
    assert sh(repo, "show", f"{snap.commit_sha}:tracked.txt") == "v2 unstaged\n"
    assert snap.parent_sha == sh(repo, "rev-parse", "HEAD").strip()
    assert sh(repo, "rev-parse", _git.SNAPSHOT_REF).strip() == snap.commit_sha
    assert sh(repo, "log", "-1", "--format=%s", snap.commit_sha).strip() == "agola direct run"
    assert not [p for p in os.listdir(repo / ".git") if p.startswith("agola-directrun-index")]


def test_untracked_excluded_on_request_and_ignored_included_on_request(repo: Path) -> None:
    (repo / "new.txt").write_text("untracked\n")
    (repo / "debug.log").write_text("ignored\n")

    no_untracked = _git.save_snapshot(str(repo), untracked=False)
    assert set(_git.list_files(str(repo), no_untracked.commit_sha)) == {".gitignore", "tracked.txt", "gone.txt"}

    with_ignored = _git.save_snapshot(str(repo), ignored=True)
    assert "debug.log" in _git.list_files(str(repo), with_ignored.commit_sha)
    assert "new.txt" in _git.list_files(str(repo), with_ignored.commit_sha)
    assert "?? debug.log" not in sh(repo, "status", "--porcelain")  # still ignored for the user


def test_repository_without_commits_and_without_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No user.name/email anywhere: the snapshot still commits (with a fallback identity).
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    r = tmp_path / "fresh"
    r.mkdir()
    sh(r, "init", "-q")
    (r / ".agola").mkdir()
    (r / ".agola" / "config.yml").write_text("runs: []\n")

    snap = _git.save_snapshot(str(r))

    assert snap.parent_sha == ""
    assert _git.list_files(str(r), snap.commit_sha) == [".agola/config.yml"]
    assert subprocess.run(["git", "-C", str(r), "rev-parse", "--verify", "-q", "HEAD"], capture_output=True).returncode != 0
    assert not (r / ".git" / "index").exists()


def test_repo_uuid_is_created_once_and_kept(repo: Path) -> None:
    first = _git.repo_uuid(str(repo))
    assert len(first) == 36
    assert _git.repo_uuid(str(repo)) == first
    assert sh(repo, "config", "agola.repouuid").strip() == first


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(_git.GitError, match="not inside a git work tree"):
        _git.save_snapshot(str(tmp_path))


def test_push_to_a_bare_repository_and_destination_refs(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    snap = _git.save_snapshot(str(repo))
    for dest in (_git.destination_ref(), _git.destination_ref(tag="v1"), _git.destination_ref(ref="refs/pull/1/head")):
        _git.push_snapshot(snap.root, snap.commit_sha, str(remote), dest, token="secret")
    refs = sh(remote, "for-each-ref", "--format=%(refname) %(objectname)")
    assert f"refs/heads/master {snap.commit_sha}" in refs
    assert f"refs/tags/v1 {snap.commit_sha}" in refs
    assert f"refs/pull/1/head {snap.commit_sha}" in refs
    assert _git.repo_push_url("http://gw:8000/", "u1", "abc") == "http://gw:8000/repos/u1/abc.git"


def test_an_unchanged_work_tree_gives_the_same_snapshot_and_a_change_a_new_one(repo: Path) -> None:
    (repo / "tracked.txt").write_text("v2\n")  # same size, likely in the second the index was written
    first = _git.save_snapshot(str(repo))
    assert sh(repo, "show", f"{first.commit_sha}:tracked.txt") == "v2\n"

    # In a later second, git must still not trust the cached stat of a file changed in the index's
    # second (the snapshot's index copy keeps the index's mtime): same content, same snapshot.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)  # to the next second of the clock: not a wait on a result
    again = _git.save_snapshot(str(repo))
    assert sh(repo, "show", f"{again.commit_sha}:tracked.txt") == "v2\n"
    # Same tree, parent and message: the commit is reused (pushing it again is a no-op).
    assert (again.commit_sha, again.parent_sha, again.reused, first.reused) == (first.commit_sha, first.parent_sha,
                                                                                 True, False)

    (repo / "tracked.txt").write_text("v3\n")
    changed = _git.save_snapshot(str(repo))
    assert changed.commit_sha != first.commit_sha and not changed.reused
    assert sh(repo, "show", f"{changed.commit_sha}:tracked.txt") == "v3\n"
    assert sh(repo, "rev-parse", _git.SNAPSHOT_REF).strip() == changed.commit_sha

    sh(repo, "commit", "-q", "-am", "second")  # same tree, new HEAD: a new snapshot on top of it
    on_new_head = _git.save_snapshot(str(repo))
    assert on_new_head.tree_sha == changed.tree_sha
    assert on_new_head.parent_sha == sh(repo, "rev-parse", "HEAD").strip() != changed.parent_sha
    assert sh(repo, "rev-parse", f"{on_new_head.commit_sha}^").strip() == on_new_head.parent_sha


async def test_pushing_an_unchanged_snapshot_again_starts_no_git(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_gitserver(tmp_path / "gitserver") as server:
        url = f"{server.url}/repos/u1/r1.git"
        snap = _git.save_snapshot(str(repo))
        assert not await asyncio.to_thread(_git.remote_ref_is, url, "refs/heads/main", snap.commit_sha)
        await asyncio.to_thread(_git.push_snapshot, snap.root, snap.commit_sha, url, "refs/heads/main")
        assert await asyncio.to_thread(_git.remote_ref_is, url, "refs/heads/main", snap.commit_sha)

        calls: list[tuple[str, ...]] = []
        real_git = _git.git

        def recording_git(root: str, *args: str, **kwargs: Any) -> str:
            calls.append(args)
            return real_git(root, *args, **kwargs)

        monkeypatch.setattr(_git, "git", recording_git)
        again = _git.save_snapshot(str(repo))
        calls.clear()
        await asyncio.to_thread(_git.push_snapshot, again.root, again.commit_sha, url, "refs/heads/main")
        assert calls == []  # the remote ref already is that commit

        (repo / "tracked.txt").write_text("changed\n")
        changed = _git.save_snapshot(str(repo))
        await asyncio.to_thread(_git.push_snapshot, changed.root, changed.commit_sha, url, "refs/heads/main")
        assert [c[0] for c in calls if c[0] == "push"] == ["push"]
        assert await asyncio.to_thread(_git.remote_ref_is, url, "refs/heads/main", changed.commit_sha)
        assert not await asyncio.to_thread(_git.remote_ref_is, url, "refs/heads/other", changed.commit_sha)
    # Unreachable now: unsure, so git is left to push (and to report the error).
    assert not await asyncio.to_thread(_git.remote_ref_is, url, "refs/heads/main", changed.commit_sha)
