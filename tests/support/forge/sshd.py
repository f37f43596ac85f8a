"""A real OpenSSH server for the emulator's repositories: started on a loopback port with its
config, host key and ``authorized_keys`` in a temp dir. Each deploy key of a repository is a line
whose forced command serves that repository only, read-only unless the key may push, through
``git-shell``."""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

from tests.support.forge.model import Forge
from tests.support.services import free_port
from tests.support.waiting import wait_for_sync

SERVE = """#!/bin/sh
# Forced command of a deploy key: $1 = owner/name, $2 = ro|rw.
set -eu
cmd="${SSH_ORIGINAL_COMMAND%% *}"
path=$(printf '%s' "${SSH_ORIGINAL_COMMAND#* }" | tr -d "'" | sed 's#^/##; s#\\.git$##')
if [ "$path" != "$1" ]; then echo "this deploy key is for $1 only" >&2; exit 1; fi
case "$cmd" in
  git-upload-pack|git-upload-archive) ;;
  git-receive-pack) if [ "$2" != rw ]; then echo "read-only deploy key" >&2; exit 1; fi ;;
  *) echo "only git commands are served" >&2; exit 1 ;;
esac
exec git-shell -c "$cmd '__ROOT__/$1.git'"
"""


def available() -> bool:
    return Path("/usr/sbin/sshd").exists() and shutil.which("git-shell") is not None


class SSHServer:
    def __init__(self, forge: Forge, work: Path) -> None:
        self.forge = forge
        self.work = work
        self.port = free_port()
        self.user = getpass.getuser()
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key_line = ""

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        host_key = self.work / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        pub = host_key.with_suffix(".pub").read_text().split()
        self.host_key_line = f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}"
        serve = self.work / "git-serve.sh"
        serve.write_text(SERVE.replace("__ROOT__", str(self.forge.repos_root)))
        serve.chmod(0o755)
        self.authorized_keys.write_text("")
        config = self.work / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"PidFile {self.work / 'sshd.pid'}", f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin forced-commands-only", "UsePAM no",
            f"AllowUsers {self.user}", "LogLevel ERROR", "",
        ]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        with open(self.work / "sshd.log", "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_for_sync(self._listening, timeout=15, message="sshd listening")
        self.forge.ssh_port = self.port
        self.forge.ssh_user = self.user
        self.forge.keys_changed = self.write_keys

    @property
    def authorized_keys(self) -> Path:
        return self.work / "authorized_keys"

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(self.work / 'sshd.log').read_text()[-500:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def write_keys(self) -> None:
        serve = self.work / "git-serve.sh"
        lines = []
        with self.forge.lock:
            for repo in self.forge.repos.values():
                for key in repo.keys.values():
                    command = f"{serve} {shlex.quote(repo.path)} {'ro' if key.read_only else 'rw'}"
                    opts = f'command="{command}",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty'
                    lines.append(f"{opts} {' '.join(key.key.split()[:2])}")
        tmp = self.authorized_keys.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.authorized_keys)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
