"""A second Docker engine started with ``--userns-remap=default`` (containers' root is an
unprivileged host uid), on its own socket, data root and exec root, no bridge, no iptables.

Needs root, ``dockerd`` and user namespaces. ``dockerd`` itself creates the ``dockremap`` user and
its ``/etc/subuid`` and ``/etc/subgid`` ranges the first time (kept: they are what
``--userns-remap=default`` means on that host). The engine gets the ``agola-test/busybox`` image
imported offline. Stopped by its pid; its dirs are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from agola.util import busyboximage
from tests.support.services import BUSYBOX_BIN, BUSYBOX_IMAGE, missing
from tests.support.waiting import wait_for_sync


def unsupported_reason() -> str:
    """Why this machine cannot run a userns-remap engine ("" when it can)."""
    if os.geteuid() != 0:
        return "a userns-remap dockerd needs root"
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "user namespaces are disabled (user.max_user_namespaces=0)"
    except (OSError, ValueError):
        return "no user namespace support (/proc/sys/user/max_user_namespaces)"
    return ""


class UsernsDockerd:
    def __init__(self) -> None:
        # Short: containerd's sockets live under the exec root (unix socket paths are limited).
        self.root = Path(tempfile.mkdtemp(prefix="agola-userns-", dir="/tmp"))
        os.chmod(self.root, 0o711)  # the remapped root must traverse it to its own data root
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log_path = self.root / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", "-H", self.url, *args], input=input, capture_output=True, timeout=timeout)

    def start(self, timeout: float = 60) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            missing("dockerd (apt-get install docker.io)")
            return
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [dockerd, "--userns-remap=default", "--bridge=none", "--iptables=false", "--ip6tables=false",
                 "-H", self.url, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                 "--pidfile", str(self.root / "dockerd.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        try:
            wait_for_sync(self._ready_or_exited, timeout, interval=0.1, message="the userns-remap dockerd answers")
        except TimeoutError:
            pass
        if self.proc.poll() is not None or not self._answers():
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
            missing(f"a dockerd with --userns-remap=default did not start: {tail}")
            return
        options = json.loads(self.docker("info", "--format", "{{json .SecurityOptions}}").stdout or b"[]")
        if "name=userns" not in options:
            self.stop()
            missing(f"the dockerd started with --userns-remap=default does not remap users: {options}")
            return
        self.docker("import", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]', "-", BUSYBOX_IMAGE,
                    input=busyboximage.rootfs_tar(BUSYBOX_BIN), timeout=120).check_returncode()

    def _answers(self) -> bool:
        return self.docker("version", timeout=10).returncode == 0

    def _ready_or_exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None or self._answers()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None
        self._stop_containerd()
        self._unmount_all()
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_containerd(self) -> None:
        """The containerd our dockerd started, if it outlived it (dockerd killed)."""
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.root).encode() in cmdline:  # that very containerd, not a reused pid
            os.kill(pid, signal.SIGTERM)

    def _unmount_all(self) -> None:
        """Mounts dockerd left under our dirs (overlays, a killed engine's): removed before the dirs."""
        prefix = str(self.root) + "/"
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return
        points = [fields[4] for fields in (line.split() for line in lines) if fields[4].startswith(prefix)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
