"""The git side of ``agola directrun start`` (spec §6.8): snapshot the working tree as a commit and
push it to the gateway's git proxy.

The snapshot never touches the user's index, HEAD or working tree: files are staged into a
temporary index file (``GIT_INDEX_FILE``), written as a tree, committed with ``commit-tree`` (HEAD as
parent when there is one) and kept reachable by the hidden ref ``refs/agola/directrun`` so a
``git gc`` cannot drop it while a run still needs it.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Mapping, Sequence

import attrs

from agola.client.gateway import authorization

SNAPSHOT_REF = "refs/agola/directrun"
REPO_UUID_KEY = "agola.repouuid"
DEFAULT_MESSAGE = "agola direct run"
# Used only when the user has no git identity configured: commit-tree needs one.
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "agola",
    "GIT_AUTHOR_EMAIL": "agola@localhost",
    "GIT_COMMITTER_NAME": "agola",
    "GIT_COMMITTER_EMAIL": "agola@localhost",
}
# Variables that would redirect our git calls away from the repository we were pointed at.
_SCRUBBED_ENV = ("GIT_INDEX_FILE", "GIT_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY")


class GitError(Exception):
    """A git command failed; the message is git's own error text."""


@attrs.frozen
class Snapshot:
    root: str  # the repository's top-level directory
    commit_sha: str
    tree_sha: str
    parent_sha: str  # "" when the repository has no commit yet
    reused: bool = False  # the last snapshot's commit again (nothing changed): maybe pushed already


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"  # never hang on a credential prompt
    env.update(extra or {})
    return env


def git(root: str, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Run ``git -C root args``; stdout without the trailing newline. ``GitError`` on failure."""
    try:
        proc = subprocess.run(["git", "-C", root, *args], env=_env(env), capture_output=True, text=True)
    except FileNotFoundError:
        raise GitError("git is not installed (or not on PATH)") from None
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
        raise GitError(f"git {args[0]}: {detail}")
    return proc.stdout.rstrip("\n")


def repo_root(path: str = ".") -> str:
    """The top-level directory of the work tree containing ``path``."""
    try:
        return git(path, "rev-parse", "--show-toplevel")
    except GitError:
        raise GitError(f"{os.path.abspath(path)} is not inside a git work tree") from None


def repo_uuid(root: str) -> str:
    """The repository's stable id (git config ``agola.repouuid``), created on first use. Runs of
    one local repository share a run group suffix and caches; two repositories never do."""
    current = git(root, "config", "--local", "--get", REPO_UUID_KEY, check=False).strip()
    if current:
        return current
    new = str(uuid.uuid4())
    git(root, "config", "--local", REPO_UUID_KEY, new)
    return new


def _identity_env(root: str) -> dict[str, str]:
    ok = subprocess.run(["git", "-C", root, "var", "GIT_COMMITTER_IDENT"], env=_env(),
                        capture_output=True).returncode == 0
    ok = ok and subprocess.run(["git", "-C", root, "var", "GIT_AUTHOR_IDENT"], env=_env(),
                               capture_output=True).returncode == 0
    return {} if ok else dict(_FALLBACK_IDENTITY)


@attrs.frozen
class _Commit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str


def _parse_commit(sha: str, body: bytes) -> _Commit:
    headers, _, message = body.decode(errors="replace").partition("\n\n")
    tree, parents = "", []
    for line in headers.split("\n"):
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
    return _Commit(sha=sha, tree=tree, parents=tuple(parents), message=message)


class _CommitReader:
    """One ``git cat-file --batch`` reading the commits ``revs`` name, started at once and collected
    by ``result()``: it runs while the snapshot stages the work tree (it needs neither)."""

    def __init__(self, path: str, *revs: str) -> None:
        self.revs = revs
        try:
            self.proc = subprocess.Popen(["git", "-C", path, "cat-file", "--batch"], env=_env(),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise GitError("git is not installed (or not on PATH)") from None
        assert self.proc.stdin is not None
        try:  # a few short lines: they fit in the pipe, this never blocks
            self.proc.stdin.write("".join(f"{rev}^{{commit}}\n" for rev in revs).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # it failed at once: result() says why

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc.wait()

    def result(self) -> list[_Commit | None]:
        """The commits (None for a missing one)."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out, err = self.proc.stdout.read(), self.proc.stderr.read()  # stderr: a line at most
        if self.proc.wait() != 0:
            raise GitError(f"git cat-file: {err.decode(errors='replace').strip()}")
        pos = 0
        commits: list[_Commit | None] = []
        for _ in self.revs:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) != 3 or header[1] != b"commit":
                commits.append(None)  # "<rev> missing"
                continue
            size = int(header[2])
            commits.append(_parse_commit(header[0].decode(), out[pos:pos + size]))
            pos += size + 1
        return commits


def _commit_tree(root: str, tree: str, parent: str, message: str) -> str:
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    try:
        return git(root, *args).strip()
    except GitError:
        fallback = _identity_env(root)  # no identity configured: commit as "agola"
        if not fallback:
            raise
        return git(root, *args, env=fallback).strip()


def save_snapshot(
    path: str = ".", *, untracked: bool = True, ignored: bool = False, message: str = DEFAULT_MESSAGE
) -> Snapshot:
    """Commit the current state of the work tree without touching index, HEAD or files.

    Tracked files are taken as they are on disk (staged or not, deletions included); untracked
    files too unless ``untracked=False``; ignored files only with ``ignored=True``.

    When nothing changed since the last snapshot (same tree, same parent, same message), that
    snapshot's commit is the result again: pushing it is then a no-op for the server (one ref
    advertisement, no pack). Each git process costs a few milliseconds, so this takes four of them
    when nothing changed and six otherwise, the one reading HEAD and the last snapshot running
    while the work tree is staged.
    """
    commits = _CommitReader(path, "HEAD", SNAPSHOT_REF)
    try:
        tree, root = _write_tree(path, untracked=untracked, ignored=ignored)
        head, previous = commits.result()
    finally:
        commits.close()
    parent = head.sha if head is not None else ""
    if (previous is not None and previous.tree == tree and previous.parents == ((parent,) if parent else ())
            and previous.message.strip() == message.strip()):
        return Snapshot(root=root, commit_sha=previous.sha, tree_sha=tree, parent_sha=parent, reused=True)
    commit = _commit_tree(root, tree, parent, message)
    git(root, "update-ref", "-m", "agola direct run", SNAPSHOT_REF, commit)
    return Snapshot(root=root, commit_sha=commit, tree_sha=tree, parent_sha=parent)


def _write_tree(path: str, *, untracked: bool, ignored: bool) -> tuple[str, str]:
    """The tree of the work tree as ``save_snapshot`` takes it, and the work tree's root."""
    try:
        root, git_dir, real_index = git(path, "rev-parse", "--show-toplevel", "--absolute-git-dir",
                                        "--path-format=absolute", "--git-path", "index").split("\n")
    except (GitError, ValueError):
        raise GitError(f"{os.path.abspath(path)} is not inside a git work tree") from None
    fd, tmp_index = tempfile.mkstemp(prefix="agola-directrun-index-", dir=git_dir)
    os.close(fd)
    try:
        if os.path.exists(real_index):
            # Starting from a copy keeps git's stat cache: only changed files are hashed again. The
            # copy keeps the index's mtime too: git trusts a cached stat only for files older than
            # the index file, so a new mtime would hide a same-size change made in the second the
            # index was written (a snapshot of the old content).
            shutil.copy2(real_index, tmp_index)
        else:
            os.unlink(tmp_index)  # git wants a missing file, not an empty one
        env = {"GIT_INDEX_FILE": tmp_index}
        # -A also does what -u does (modified and deleted tracked files); -f adds ignored files.
        add = ["-f", "-A"] if ignored else ["-A"] if untracked else ["-u"]
        git(root, "add", *add, ":/", env=env)
        tree = git(root, "write-tree", env=env).strip()
    finally:
        if os.path.exists(tmp_index):
            os.unlink(tmp_index)
    return tree, root


def current_branch(root: str) -> str:
    """The branch checked out in the work tree, "" on a detached HEAD."""
    return git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()


UNCOMMITTED_MESSAGE = "uncommitted changes"


def run_message(snap: Snapshot) -> str:
    """The commit message a direct run shows: HEAD's (``git log -1``) when the snapshot is HEAD's
    tree, else "uncommitted changes"."""
    if not snap.parent_sha:
        return UNCOMMITTED_MESSAGE
    head_tree = git(snap.root, "rev-parse", f"{snap.parent_sha}^{{tree}}").strip()
    if head_tree != snap.tree_sha:
        return UNCOMMITTED_MESSAGE
    return git(snap.root, "log", "-1", "--format=%B", snap.parent_sha).strip() or UNCOMMITTED_MESSAGE


def destination_ref(branch: str = "", tag: str = "", ref: str = "") -> str:
    """The remote ref a direct run is pushed to: ``refs/heads/<branch>``, ``refs/tags/<tag>`` or
    ``ref`` itself."""
    if tag:
        return f"refs/tags/{tag}"
    if ref:
        return ref
    return f"refs/heads/{branch or 'master'}"


def push_snapshot(root: str, commit_sha: str, url: str, dest_ref: str, token: str = "", *,
                  maybe_pushed: bool = True) -> None:
    """Force-push ``commit_sha`` to ``dest_ref`` of ``url``. The token travels as an HTTP header set
    through the environment (``GIT_CONFIG_*``), never on the command line where ``ps`` shows it.

    When the remote ref already is ``commit_sha`` (an unchanged work tree pushed again), nothing
    is pushed: git would only have read the same ref advertisement, at the cost of a git and a
    git-remote-http process. ``maybe_pushed=False`` (a commit just made) skips that check."""
    if maybe_pushed and remote_ref_is(url, dest_ref, commit_sha, token):
        return
    env: dict[str, str] = {}
    if token:
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: {authorization(token)}"})
    # --no-verify: the user's pre-push hooks are about their own remotes, not this snapshot.
    git(root, "push", "--quiet", "--no-verify", "--force", url, f"{commit_sha}:{dest_ref}", env=env)


def remote_ref_is(url: str, ref: str, commit_sha: str, token: str = "", timeout: float = 10.0) -> bool:
    """Whether ``ref`` of the smart HTTP remote ``url`` is ``commit_sha``, from the ref
    advertisement a push starts with. False whenever unsure (not HTTP, an error): git then pushes
    and reports any problem itself."""
    if not url.startswith(("http://", "https://")):
        return False
    headers = {"Authorization": authorization(token)} if token else {}
    request = urllib.request.Request(f"{url}/info/refs?service=git-receive-pack", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            if resp.headers.get("Content-Type") != "application/x-git-receive-pack-advertisement":
                return False
            body = resp.read(MAX_ADVERTISEMENT + 1)
    except (OSError, ValueError, http.client.HTTPException):
        return False  # urllib's errors are OSErrors; ValueError: a malformed URL
    if len(body) > MAX_ADVERTISEMENT:
        return False
    try:
        return any(line == f"{commit_sha} {ref}" for line in _pkt_lines(body))
    except ValueError:
        return False


# Enough for the refs of a direct runs repository (branches, tags and PR refs pushed by the CLI).
MAX_ADVERTISEMENT = 1024 * 1024


def _pkt_lines(body: bytes) -> list[str]:
    """The lines of a pkt-line stream (flushes dropped), each without its capabilities and LF."""
    lines, pos = [], 0
    while pos + 4 <= len(body):
        size = int(body[pos:pos + 4], 16)
        if size < 4:
            pos += 4  # flush (0000) or delimiter packets
            continue
        if pos + size > len(body):
            raise ValueError("truncated pkt-line")
        lines.append(body[pos + 4:pos + size].split(b"\0", 1)[0].rstrip(b"\n").decode())
        pos += size
    return lines


def repo_push_url(gateway_url: str, user_id: str, uuid_: str) -> str:
    return f"{gateway_url.rstrip('/')}/repos/{user_id}/{uuid_}.git"


def list_files(root: str, commit: str) -> Sequence[str]:
    """Paths in a commit (for tests and ``--dry-run`` style previews)."""
    out = git(root, "ls-tree", "-r", "--name-only", commit)
    return [line for line in out.splitlines() if line]
