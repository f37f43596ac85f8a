"""Clone credentials: the SSH key and host key reach ssh through files, never the command line or logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agola.services.executor import gitclone
from agola.services.executor.taskspec import CloneSource

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
    source = CloneSource(
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
    source = CloneSource(repository_url="https://example.invalid/r.git", http_auth_header="Authorization: Bearer tok")
    env = gitclone._git_env(source, tmp_path)
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["http.extraHeader"] == "Authorization: Bearer tok"
    skip = gitclone._git_env(CloneSource(repository_url="x", skip_host_key_check=True), tmp_path)
    assert "StrictHostKeyChecking=no" in skip["GIT_SSH_COMMAND"]


def test_urls_are_masked_in_logs() -> None:
    assert gitclone.mask_url("fetch https://user:pass@host/r.git failed") == "fetch https://***@host/r.git failed"
