"""Reading the emulator's bare repositories with the real git (what a forge computes on a push)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from agola.services.gitserver.repos import git_env

ZERO_SHA = "0" * 40


def git(git_dir: Path, *args: str, check: bool = True) -> str:
    env = {**git_env(), "GIT_DIR": str(git_dir)}
    proc = subprocess.run(["git", *args], env=env, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode(errors="replace")


def init_bare(git_dir: Path, default_branch: str) -> None:
    git_dir.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", f"--initial-branch={default_branch}", str(git_dir)],
                   env=git_env(), check=True)
    git(git_dir, "config", "http.receivepack", "true")


def refs(git_dir: Path) -> dict[str, str]:
    out = git(git_dir, "for-each-ref", "--format=%(refname) %(objectname)")
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, _, sha = line.partition(" ")
        if name:
            found[name] = sha
    return found


def peel(git_dir: Path, sha: str) -> str:
    """The commit an object (an annotated tag, or a commit) points to."""
    return git(git_dir, "rev-parse", f"{sha}^{{commit}}").strip()


def commit(git_dir: Path, sha: str) -> dict[str, Any]:
    out = git(git_dir, "show", "-s", "--format=%H%x00%an%x00%ae%x00%aI%x00%B", sha)
    h, name, email, date, message = out.split("\x00", 4)
    return {"sha": h, "author_name": name, "author_email": email, "date": date, "message": message.rstrip("\n") + "\n"}


def pushed_commits(git_dir: Path, before: str, after: str) -> list[dict[str, Any]]:
    """The commits a ref update brought, newest first (Gitea's order), at most 20."""
    if after == ZERO_SHA:
        return []
    spec = [after] if before == ZERO_SHA else [f"{before}..{after}"]
    shas = git(git_dir, "rev-list", "--max-count=20", *spec).split()
    return [commit(git_dir, s) for s in shas]


def object_type(git_dir: Path, sha: str) -> str:
    return git(git_dir, "cat-file", "-t", sha, check=False).strip()


def read_file(git_dir: Path, ref: str, path: str) -> bytes | None:
    env = {**git_env(), "GIT_DIR": str(git_dir)}
    proc = subprocess.run(["git", "cat-file", "blob", f"{ref}:{path}"], env=env, capture_output=True, check=False)
    return proc.stdout if proc.returncode == 0 else None


def fetch_into(git_dir: Path, source: Path, refspec: str) -> None:
    git(git_dir, "fetch", "-q", str(source), refspec)
