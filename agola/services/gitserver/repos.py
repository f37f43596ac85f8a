"""Bare repositories under one root directory: path rules, creation on first push, file reads.

Repository paths are relative, ``/``-separated, and end with a ``.git`` component (agola uses
``<userID>/<repoUUID>.git``). Every component must be a plain name (letters, digits, ``._-``, not
starting with a dot or a dash), so ``..``, absolute paths and odd characters never reach the disk;
the resolved directory is also checked to be inside the root (symlinks).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import attrs

from agola.errors import BadRequest, Internal, NotExist
from agola.services.gitserver.catfile import CatFilePool
from agola.util.log import get_logger
from agola.util.privatefiles import private_dir

log = get_logger(__name__)

_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# A revision usable in `<rev>:<path>`: a hex sha or a single-component branch/tag name.
_REV_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
MAX_FILE_PATH = 4096
GIT_SERVICES = ("git-upload-pack", "git-receive-pack")


@attrs.frozen
class GitPath:
    """A parsed request path: the repository (``user/repo.git``) and what follows it."""

    repo: str
    rest: tuple[str, ...]


def parse_request_path(path: str) -> GitPath:
    """Split a URL path (without its leading ``/``) as ``[repos/]<a>/<b>.git/<rest...>``.

    400 on unsafe components, 404 when the path names no repository.

    The optional leading ``repos/`` lets the gitserver be addressed with the same URLs as the
    gateway's ``/repos/...`` proxy; the reference gitserver serves the stripped form.
    """
    if path.startswith("/"):
        raise BadRequest("wrong repository path: absolute paths are not allowed")
    parts = path.split("/")
    if parts and parts[0] == "repos" and len(parts) > 1:
        parts = parts[1:]
    for i, part in enumerate(parts):
        if part.endswith(".git"):
            repo_parts, rest = parts[: i + 1], tuple(parts[i + 1:])
            break
    else:
        _check_components(parts)
        raise NotExist("no repository in path (expected <path>/<name>.git/...)")
    _check_components(repo_parts)
    if repo_parts[-1] == ".git":
        raise BadRequest("wrong repository path: empty repository name")
    return GitPath(repo="/".join(repo_parts), rest=rest)


def _check_components(parts: list[str]) -> None:
    for part in parts:
        if part in ("", ".", ".."):
            raise BadRequest("wrong repository path: empty, '.' or '..' component")
        if not _COMPONENT_RE.match(part):
            raise BadRequest(f"wrong repository path: invalid component {part!r}")


def check_rev(rev: str) -> str:
    if not _REV_RE.match(rev) or ".." in rev or rev.endswith(".lock"):
        raise BadRequest(f"invalid commit or ref {rev!r}")
    return rev


def check_file_path(parts: tuple[str, ...] | list[str]) -> str:
    if not parts:
        raise BadRequest("missing file path")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadRequest("invalid file path: empty, '.' or '..' component")
        if any(ord(c) < 0x20 or c == "\x7f" for c in part):
            raise BadRequest("invalid file path: control characters")
    path = "/".join(parts)
    if len(path) > MAX_FILE_PATH:
        raise BadRequest("invalid file path: too long")
    return path


def git_env() -> dict[str, str]:
    """A clean environment: no user or system git config leaks into the server's behaviour."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "HOME": os.environ.get("HOME", "/"),
    }


async def run_git(*args: str, git_dir: Path | None = None, check: bool = True) -> tuple[int, bytes, bytes]:
    """Run git (no shell) and collect its output; ``check`` turns a failure into Internal."""
    env = git_env()
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    proc = await asyncio.create_subprocess_exec(
        "git", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate()
    rc = proc.returncode if proc.returncode is not None else -1
    if check and rc != 0:
        log.warning("git failed", args=" ".join(args[:2]), rc=rc, stderr=err.decode(errors="replace")[-500:])
        raise Internal(f"git {args[0]} failed")
    return rc, out, err


class RepoStore:
    """The bare repositories under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._create_lock = asyncio.Lock()
        # File reads go through one long-lived `git cat-file --batch` per repository.
        self.objects = CatFilePool(git_env())
        self._background: set[asyncio.Task[None]] = set()
        self._gc_running: set[Path] = set()

    async def close(self) -> None:
        """End the git processes kept for file reads; wait for background maintenance."""
        await self.objects.close()
        await asyncio.gather(*self._background, return_exceptions=True)

    def prepare(self) -> None:
        private_dir(self.root)  # users' pushed sources
        if shutil.which("git") is None:
            raise RuntimeError("git not found on PATH (the gitserver needs the git CLI)")

    def repo_dir(self, repo: str) -> Path:
        """The directory of a (validated) repo path, confined to the root even through symlinks."""
        path = self.root / repo
        root = self.root.resolve()
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise BadRequest("wrong repository path: outside the data directory")
        return path

    def exists(self, repo: str) -> bool:
        d = self.repo_dir(repo)
        return (d / "HEAD").is_file() and (d / "objects").is_dir()

    def require(self, repo: str) -> Path:
        if not self.exists(repo):
            raise NotExist(f"repository {repo} does not exist")
        return self.repo_dir(repo)

    async def ensure(self, repo: str) -> Path:
        """Create the bare repository (push enabled) if missing; safe under concurrent pushes."""
        final = self.repo_dir(repo)
        if self.exists(repo):
            return final
        async with self._create_lock:
            if self.exists(repo):
                return final
            final.parent.mkdir(parents=True, exist_ok=True)
            # Build aside, then rename: a half-initialised repo is never visible.
            tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
            try:
                await run_git("init", "--bare", "-q", str(tmp))
                await run_git("config", "http.receivepack", "true", git_dir=tmp)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if not self.exists(repo):  # not a lost race with another process
                        raise
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            log.info("repository created", repo=repo)
        return final

    async def after_push(self, repo: str) -> None:
        """What a push needs afterwards: HEAD on an existing branch, and a ``git gc --auto`` in the
        background when the repository looks due for one (receive-pack's own runs inside the
        push's response: ``receive.autogc`` is off for it, see ``cgi.cgi_env``)."""
        await self.fix_head(repo)
        git_dir = self.repo_dir(repo)
        if git_dir not in self._gc_running and _gc_due(git_dir):
            self._gc_running.add(git_dir)
            task = asyncio.create_task(self._gc(git_dir), name="gitserver-gc")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _gc(self, git_dir: Path) -> None:
        try:
            await run_git("gc", "--auto", "--quiet", git_dir=git_dir, check=False)
        finally:
            self._gc_running.discard(git_dir)

    async def fix_head(self, repo: str) -> None:
        """Point HEAD at an existing branch after a push, so clones check something out."""
        git_dir = self.repo_dir(repo)
        if _head_resolves(git_dir):
            return  # the usual case, told by the files alone: no git process
        rc, _, _ = await run_git("rev-parse", "--verify", "-q", "HEAD", git_dir=git_dir, check=False)
        if rc == 0:
            return
        _, out, _ = await run_git("for-each-ref", "--count=1", "--format=%(refname)", "refs/heads/",
                                  git_dir=git_dir, check=False)
        ref = out.decode().strip()
        if ref:
            await run_git("symbolic-ref", "HEAD", ref, git_dir=git_dir, check=False)

    async def file_at(self, repo: str, rev: str, file_path: tuple[str, ...] | list[str]) -> AsyncIterator[bytes]:
        """The content of ``file_path`` at ``rev`` as a byte stream; 404 if repo/rev/file is missing."""
        git_dir = self.require(repo)
        spec = f"{check_rev(rev)}:{check_file_path(file_path)}"
        found = await self.objects.read(git_dir, spec)
        if found is None:
            raise NotExist(f"file {'/'.join(file_path)} not found at {rev}")
        if found.info.type != "blob":
            raise BadRequest(f"{'/'.join(file_path)} is not a file at {rev}")
        if found.content is None:  # a big file: streamed by a process of its own
            return _stream_git(git_dir, "cat-file", "blob", found.info.oid)
        return _chunks(found.content)


def _head_resolves(git_dir: Path) -> bool:
    """Whether HEAD is a symbolic ref to a branch that exists, read from the ref files (False
    when unsure: the caller then asks git)."""
    try:
        head = (git_dir / "HEAD").read_text()
    except OSError:
        return False
    if not head.startswith("ref: refs/heads/"):
        return False
    ref = head[len("ref: "):].strip()
    if (git_dir / ref).is_file():
        return True
    try:
        packed = (git_dir / "packed-refs").read_text()
    except OSError:
        return False
    return any(line.endswith(" " + ref) for line in packed.splitlines() if not line.startswith(("#", "^")))


# git's defaults for `gc --auto` (gc.auto, gc.autoPackLimit): more loose objects than this in
# objects/17 (1/256 of them, as git estimates), or more packs than this.
_GC_LOOSE_IN_17 = (6700 + 255) // 256
_GC_PACKS = 50


def _gc_due(git_dir: Path) -> bool:
    """git's own estimate of whether ``gc --auto`` has work, without starting git."""
    try:
        loose = sum(1 for e in os.scandir(git_dir / "objects" / "17") if len(e.name) >= 38)
    except OSError:
        loose = 0
    if loose > _GC_LOOSE_IN_17:
        return True
    try:
        packs = sum(1 for e in os.scandir(git_dir / "objects" / "pack") if e.name.endswith(".pack"))
    except OSError:
        packs = 0
    return packs > _GC_PACKS


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _stream_git(git_dir: Path, *args: str) -> AsyncIterator[bytes]:
    env = dict(git_env(), GIT_DIR=str(git_dir))
    proc = await asyncio.create_subprocess_exec(
        "git", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    try:
        while chunk := await proc.stdout.read(65536):
            yield chunk
        if await proc.wait() != 0:
            raise Internal(f"git {args[0]} failed")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
