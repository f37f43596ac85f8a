"""The clone step, done on the executor host with the git CLI (the task image needs no git).

The checkout (with its ``.git``) is then copied into the pod's working dir by the task runner.
Credentials never appear in a command line or a log: an SSH key goes to a 0600 temp file used
through ``GIT_SSH_COMMAND``; an HTTP auth header goes through ``GIT_CONFIG_*`` environment
variables; a URL's ``user:password@`` part is masked in every message.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from agola.services.executor.drivers.base import Sink


@attrs.frozen
class CloneSource:
    """Where the clone step fetches from: the run's static environment, as the reference's
    generated clone script read it (``clone_source``)."""

    repository_url: str
    ref: str = ""
    commit_sha: str = ""
    ssh_private_key: str = attrs.field(default="", repr=False)
    ssh_host_key: str = ""
    skip_host_key_check: bool = False
    # Full header line for HTTP(S) clones, e.g. "Authorization: Bearer <token>". Never logged.
    http_auth_header: str = attrs.field(default="", repr=False)


def clone_source(env: Mapping[str, str]) -> CloneSource | None:
    """The clone parameters of a task environment (``AGOLA_REPOSITORY_URL``, ``AGOLA_GIT_REF``,
    ``AGOLA_GIT_COMMITSHA``, ``AGOLA_SSHPRIVKEY``, ``AGOLA_SSHHOSTKEY``,
    ``AGOLA_SKIPSSHHOSTKEYCHECK``); None without a repository URL."""
    url = env.get("AGOLA_REPOSITORY_URL", "")
    if not url:
        return None
    return CloneSource(
        repository_url=url,
        ref=env.get("AGOLA_GIT_REF", ""),
        commit_sha=env.get("AGOLA_GIT_COMMITSHA", ""),
        ssh_private_key=env.get("AGOLA_SSHPRIVKEY", ""),
        ssh_host_key=env.get("AGOLA_SSHHOSTKEY", ""),
        skip_host_key_check=bool(env.get("AGOLA_SKIPSSHHOSTKEYCHECK", "")),
    )


class CloneError(Exception):
    """A git command failed; its (masked) output is already in the step log."""


def mask_url(text: str) -> str:
    """Hide the credentials of any ``scheme://user:password@host`` in ``text``."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


def _git_env(source: CloneSource, secrets_dir: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(secrets_dir),  # no user/global git config of the executor leaks in
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no"]
    if source.ssh_private_key:
        key = secrets_dir / "id_key"
        key.write_text(source.ssh_private_key.rstrip("\n") + "\n")
        key.chmod(0o600)
        ssh += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    if source.skip_host_key_check:
        ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    else:
        ssh += ["-o", "StrictHostKeyChecking=yes"]
        if source.ssh_host_key:
            known = secrets_dir / "known_hosts"
            known.write_text(source.ssh_host_key.rstrip("\n") + "\n")
            known.chmod(0o600)
            ssh += ["-o", f"UserKnownHostsFile={known}"]
    env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    config = [("protocol.version", "2"), ("advice.detachedHead", "false")]
    if source.http_auth_header:
        config.append(("http.extraHeader", source.http_auth_header))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (k, v) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    return env


async def _git(args: list[str], *, cwd: Path, env: Mapping[str, str], out: Sink, echo: bool = True) -> int:
    if echo:
        await out(mask_url("+ git " + " ".join(args)).encode() + b"\n")
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=dict(env), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        while data := await proc.stdout.read(64 * 1024):
            await out(mask_url(data.decode(errors="replace")).encode())
        return await proc.wait()
    except BaseException:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        raise


async def checkout(
    source: CloneSource,
    dest: Path,
    *,
    depth: int | None = None,
    recurse_submodules: bool = False,
    out: Sink,
) -> str:
    """Check out ``source`` at its commit (or ref) into the empty/new dir ``dest``; returns the sha."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agola-git-") as tmp:
        env = _git_env(source, Path(tmp))

        async def git(*args: str, echo: bool = True) -> None:
            rc = await _git(list(args), cwd=dest, env=env, out=out, echo=echo)
            if rc != 0:
                raise CloneError(f"git {args[0]} failed with exit code {rc}")

        await git("init", "-q", ".")
        await git("remote", "add", "origin", source.repository_url)
        depth_args = [f"--depth={depth}"] if depth else []
        want = source.ref or source.commit_sha
        if want:
            await git("fetch", "--no-tags", *depth_args, "origin", want)
        else:
            await git("fetch", *depth_args, "origin")
        target = source.commit_sha or "FETCH_HEAD"
        rc = await _git(["checkout", "-q", target], cwd=dest, env=env, out=out)
        if rc != 0 and source.commit_sha and source.ref:
            # The ref moved past the commit (or is shallower than it): fetch the commit itself.
            await git("fetch", "--no-tags", *depth_args, "origin", source.commit_sha)
            await git("checkout", "-q", source.commit_sha)
        elif rc != 0:
            raise CloneError(f"git checkout failed with exit code {rc}")
        if recurse_submodules:
            await git("submodule", "update", "--init", "--recursive", *depth_args)
        sha_buf = bytearray()

        async def capture(data: bytes) -> None:
            sha_buf.extend(data)

        await _git(["rev-parse", "HEAD"], cwd=dest, env=env, out=capture, echo=False)
        return sha_buf.decode().strip()
