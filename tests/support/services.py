"""Real services for tests, on loopback with free ports and temp dirs, stopped by PID.

- ``EtcdServer``: Debian's ``etcd`` binary.
- ``S3Server``: ``moto_server`` (an S3-speaking server; no MinIO server can be had here).
- ``ensure_busybox_image``: builds ``agola-test/busybox`` offline with ``docker import`` of a rootfs
  holding Debian's static busybox.

Under ``CI=true`` a missing service is a failure, elsewhere the tests that need it skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agola.util import busyboximage
from tests.support.waiting import wait_for_sync

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The internal API token of the role stacks built by fixtures (internalServicesAPIToken).
INTERNAL_API_TOKEN = "test-internal-api-token-0123456789abcdef"
TOKEN_LINE = f"internalServicesAPIToken: {INTERNAL_API_TOKEN}\n"
INTERNAL_AUTH = {"Authorization": f"token {INTERNAL_API_TOKEN}"}

BUSYBOX_IMAGE = "agola-test/busybox:latest"
BUSYBOX_BIN = busyboximage.BUSYBOX_BIN


def missing(what: str) -> None:
    """Skip on a laptop without the service; fail under CI."""
    if IN_CI:
        pytest.fail(f"required test service unavailable under CI: {what}")
    pytest.skip(f"service unavailable: {what}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class EtcdServer:
    """One etcd member on 127.0.0.1. ``stop()``/``start()`` keep the data dir (restart tests)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20) -> None:
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(binary):
            missing("etcd binary (apt-get install etcd-server)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            binary, "--name", "agolatest", "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"agolatest={peer}",
            "--log-level", "error",
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_for_sync(lambda: self._ready(), timeout=timeout, interval=0.05, message="etcd ready")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"etcd did not start: {self.log_path.read_text()[-2000:]}") from None

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.proc.returncode}")
        return _http_ok(f"{self.endpoint}/health")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class S3Server:
    """``moto_server`` on 127.0.0.1 (in-memory S3). Credentials are moto's test ones."""

    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        binary = shutil.which("moto_server")
        cmd = [binary] if binary else [sys.executable, "-m", "moto.server"]
        cmd += ["-H", "127.0.0.1", "-p", str(self.port)]
        try:
            import moto  # noqa: F401
        except ImportError:
            missing("moto[server] (pip install -e .[test])")
        log = open(self.log_path, "ab")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        try:
            wait_for_sync(self._ready, timeout=timeout, interval=0.1, message="moto_server ready")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"moto_server did not start: {self.log_path.read_text()[-2000:]}") from None

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
        return _http_ok(f"{self.endpoint}/")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server stops answering (connections hang) without losing its in-memory
        objects, as a stopped S3 host whose disk survives; ``resume()`` restarts it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_busybox_image() -> str:
    """Build ``agola-test/busybox`` once (kept across runs when the rootfs is unchanged)."""
    if not docker_available():
        missing("a Docker engine (start dockerd, see .ci/start-dockerd.sh)")
    if not os.path.exists(BUSYBOX_BIN):
        missing(f"{BUSYBOX_BIN} (apt-get install busybox-static)")
    busyboximage.ensure_image(BUSYBOX_IMAGE, BUSYBOX_BIN)
    return BUSYBOX_IMAGE


def started(server: EtcdServer | S3Server) -> float:
    t0 = time.monotonic()
    server.start()
    return time.monotonic() - t0
