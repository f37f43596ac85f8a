"""Clone credentials: the SSH key and host key reach ssh through files, never the command line or logs."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest

from agola.services.executor import gitclone

FAKE_SSH = """#!/bin/sh
# Record how git called ssh, and what the key file looks like while the clone runs.
out="{out}"
echo "args: $*" > "$out"
key=""
prev=""
for a in "$@"; do
  [ "$prev" = "-i" ] && key="$a"
  prev="$a"
done
[ -n "$key" ] && {{ stat -c 'mode: %a' "$key"; echo "key: $(cat "$key")"; }} >> "$out"
exit 1
"""


async def test_ssh_key_and_host_key_go_through_private_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, record = tmp_path / "bin", tmp_path / "ssh-call.txt"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH.format(out=record))
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    source = gitclone.CloneSource(
        repository_url="ssh://git@127.0.0.1:2222/org/repo.git",
        ref="refs/heads/main",
        ssh_private_key="-----BEGIN KEY-----\nSECRET\n-----END KEY-----",
        ssh_host_key="[127.0.0.1]:2222 ssh-ed25519 AAAA",
    )
    log = bytearray()

    async def sink(data: bytes) -> None:
        log.extend(data)

    with pytest.raises(gitclone.CloneError):
        await gitclone.checkout(source, tmp_path / "checkout", out=sink)
    call = record.read_text()
    assert "StrictHostKeyChecking=yes" in call and "UserKnownHostsFile=" in call
    assert "mode: 600" in call and "SECRET" in call  # the key file existed, private, during the clone
    assert "SECRET" not in log.decode()
    # The temporary credentials are gone afterwards.
    key_path = call.split("-i ")[1].split()[0]
    assert not os.path.exists(key_path)


def test_http_auth_header_goes_through_the_environment(tmp_path: Path) -> None:
    source = gitclone.CloneSource(repository_url="https://example.invalid/r.git", http_auth_header="Authorization: Bearer tok")
    env = gitclone._git_env(source, tmp_path)
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["http.extraHeader"] == "Authorization: Bearer tok"
    skip = gitclone._git_env(gitclone.CloneSource(repository_url="x", skip_host_key_check=True), tmp_path)
    assert "StrictHostKeyChecking=no" in skip["GIT_SSH_COMMAND"]


def test_urls_are_masked_in_logs() -> None:
    assert gitclone.mask_url("fetch https://user:pass@host/r.git failed") == "fetch https://***@host/r.git failed"


async def test_clone_with_submodules_over_git_protocol(tmp_path: Path) -> None:
    """Submodules are fetched too (over git:// on loopback; file:// submodules stay refused by git)."""
    import subprocess

    from tests.support.services import free_port
    from tests.support.waiting import wait_for

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str, cwd: Path = tmp_path) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    repos = tmp_path / "repos"
    for name in ("sub", "main"):
        work = tmp_path / f"work-{name}"
        git("init", "-q", "-b", "main", str(work))
        (work / f"{name}.txt").write_text(f"{name}\n")
        git("add", ".", cwd=work)
        git("commit", "-q", "-m", name, cwd=work)
        git("clone", "-q", "--bare", str(work), str(repos / f"{name}.git"))
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repos}", "--listen=127.0.0.1", f"--port={port}", str(repos)],
        env=env, stderr=subprocess.DEVNULL,
    )
    try:
        work = tmp_path / "work-main"
        git("-c", "protocol.file.allow=always", "submodule", "add", "-q", f"git://127.0.0.1:{port}/sub.git", "lib/sub", cwd=work)
        git("commit", "-q", "-m", "add sub", cwd=work)
        git("push", "-q", str(repos / "main.git"), "main", cwd=work)

        async def daemon_up() -> bool:
            probe = subprocess.run(["git", "ls-remote", f"git://127.0.0.1:{port}/main.git"], env=env, capture_output=True)
            return probe.returncode == 0

        await wait_for(daemon_up, timeout=10, interval=0.05)
        log = bytearray()

        async def sink(data: bytes) -> None:
            log.extend(data)

        dest = tmp_path / "checkout"
        source = gitclone.CloneSource(repository_url=f"git://127.0.0.1:{port}/main.git", ref="refs/heads/main")
        await gitclone.checkout(source, dest, depth=1, recurse_submodules=True, out=sink)
        assert (dest / "main.txt").read_text() == "main\n"
        assert (dest / "lib/sub/sub.txt").read_text() == "sub\n", log.decode()
    finally:
        daemon.terminate()
        daemon.wait()


async def test_clone_over_ssh_with_a_deploy_key_checks_the_host_key(tmp_path: Path) -> None:
    """A clone from a forge's sshd (the Gitea emulator's, a real OpenSSH) with a read-only deploy
    key: the host key given is checked (another one is refused), and the private key never reaches
    the step log."""
    import subprocess

    from tests.forges.conftest import git, work_tree
    from tests.support.forge import GiteaEmulator, ssh_available
    from tests.support.forge.app import add_key
    from tests.support.services import missing

    if not ssh_available():
        missing("openssh-server (sshd) and git-shell, for the Gitea emulator's SSH")
    emulator = GiteaEmulator(tmp_path / "gitea").start()
    try:
        emulator.add_user("dev", "pw")
        repo = emulator.create_repo("dev", "app")
        tree = work_tree(tmp_path / "tree", {"app.txt": "hello\n"})
        git("push", "-q", emulator.http_url("dev/app", "dev"), "main", cwd=tree)
        sha = emulator.run_git_rev("dev/app", "main")
        key = tmp_path / "deploy"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        add_key(emulator.forge, repo, "deploy", key.with_suffix(".pub").read_text(), True)
        source = gitclone.CloneSource(
            repository_url=f"ssh://{emulator.forge.ssh_user}@127.0.0.1:{emulator.forge.ssh_port}/dev/app.git",
            ref="refs/heads/main", commit_sha=sha, ssh_private_key=key.read_text(), ssh_host_key=emulator.ssh_host_key)
        log = bytearray()

        async def sink(data: bytes) -> None:
            log.extend(data)

        assert await gitclone.checkout(source, tmp_path / "ok", out=sink) == sha
        assert (tmp_path / "ok" / "app.txt").read_text() == "hello\n"
        assert "PRIVATE KEY" not in log.decode()

        other = tmp_path / "other_host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        host = emulator.ssh_host_key.split()[0]
        wrong = attrs.evolve(source, ssh_host_key=f"{host} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}")
        log.clear()
        with pytest.raises(gitclone.CloneError):
            await gitclone.checkout(wrong, tmp_path / "refused", out=sink)
        assert "Host key verification failed" in log.decode()
    finally:
        emulator.stop()
