"""agola split over two real ``agola serve`` processes, as a distributed installation runs it.

- the **control plane**: ``agola serve --components all-base`` (runservice and configstore on etcd
  and S3, gateway with an admin token, gitserver, scheduler);
- the **executor**: ``agola serve --components executor``, with its own data dir, reaching the
  runservice over HTTP at the URL of its config (docker driver, ``network: host``).

Both are subprocesses of the test, on loopback with free ports; stopped by PID with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.services import TOKEN_LINE, S3Server, free_port
from tests.support.waiting import wait_for_sync

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN = "split-admin-token-0123456789abcdefghij"


def agola_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
        return json.loads(resp.read())


class ServeProcess:
    """One ``agola serve`` process with its config file; its stderr kept in a file for failures."""

    def __init__(self, workdir: Path, name: str, config_text: str, components: str, health_url: str) -> None:
        self.workdir = workdir
        self.name = name
        self.components = components
        self.health_url = health_url
        self.config = workdir / f"{name}.yml"
        self.config.write_text(config_text)
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 40) -> None:
        self.spawn()
        self.wait_healthy(timeout)

    def spawn(self) -> None:
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agola.cli.main", "serve", "--config", str(self.config),
                 "--components", self.components],
                cwd=self.workdir, env=agola_env(), stdout=subprocess.DEVNULL, stderr=err)

    def wait_healthy(self, timeout: float = 40) -> None:
        def probe() -> dict[str, Any]:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: {self.stderr[-3000:]}")
            return _health(self.health_url)

        try:
            wait_for_sync(probe, timeout=timeout, interval=0.05, message=f"{self.name} {self.health_url}/health")
        except TimeoutError as exc:
            if isinstance(exc.__cause__, AssertionError):
                raise exc.__cause__ from None
            raise

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the exit status (0 for a graceful stop)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crashed host, nothing gets to clean up."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _ost(s3: S3Server, bucket: str) -> str:
    return (f"  objectStorage:\n    type: s3\n    endpoint: {s3.endpoint}\n    bucket: {bucket}\n"
            f"    location: {s3.region}\n    accessKey: {s3.access_key}\n"
            f"    secretAccessKey: {s3.secret_key}\n")


class SplitStack:
    """The processes, their config files and URLs. ``start()``; ``control`` / ``executor``
    ``.terminate()`` (SIGTERM, returns the exit status), ``.kill()``, ``.start()`` again; ``close()``
    kills what is left.

    ``control_planes`` > 1 runs that many ``all-base`` processes on the same etcd and buckets (an
    HA installation: ``controls``; ``control`` is the first, ``url`` its gateway), each with its
    own ports and data dirs; the executor reaches the runservice of ``controls[executor_target]``
    (in production: a load balancer in front of every runservice)."""

    def __init__(self, workdir: Path, etcd_endpoint: str, s3: S3Server, busybox_path: str = "/usr/bin/busybox",
                 *, control_planes: int = 1, executor_target: int = 0) -> None:
        self.workdir = workdir
        suffix = uuid.uuid4().hex[:10]
        # A label unique to this stack: an executor of another test run never matches it, and the
        # docker labels (executor id) keep its pods apart from those of other executors.
        self.label = f"split-{suffix}"
        etcd = f"  etcd:\n    endpoints: {etcd_endpoint}\n"
        storage = {"runservice": f"{etcd}{_ost(s3, f'split-rs-{suffix}')}",
                   "configstore": f"{etcd}{_ost(s3, f'split-cs-{suffix}')}"}
        self.control_urls: list[dict[str, str]] = []  # each control plane's role URLs
        self.controls = [self._control(workdir, i, storage, etcd) for i in range(control_planes)]
        self.control = self.controls[0]
        self.url = self.control.health_url
        self.runservice_url = self.control_urls[0]["runservice"]
        target = self.control_urls[executor_target]["runservice"]
        self.executor_url = f"http://127.0.0.1:{free_port()}"
        executor = (
            f"{TOKEN_LINE}executor:\n  dataDir: {workdir / 'executor'}\n"
            f"  web:\n    listenAddress: {self.executor_url.removeprefix('http://')}\n"
            f"  runserviceURL: {target}\n  advertiseURL: {self.executor_url}\n"
            f"  driver: {{type: docker}}\n  docker: {{network: host}}\n"
            f"  busyboxPath: {busybox_path}\n  activeTasksLimit: 3\n"
            f"  labels: {{stack: {self.label}}}\n"
        )
        self.executor = ServeProcess(workdir, "executor", executor, "executor", self.executor_url)
        self.processes: Sequence[ServeProcess] = (*self.controls, self.executor)

    def _control(self, workdir: Path, i: int, storage: dict[str, str], etcd: str) -> ServeProcess:
        ports = {r: free_port() for r in ("gateway", "runservice", "configstore", "gitserver", "notification")}
        url = {r: f"http://127.0.0.1:{p}" for r, p in ports.items()}
        self.control_urls.append(url)
        web = {r: f"  web:\n    listenAddress: 127.0.0.1:{p}\n" for r, p in ports.items()}
        name = "control-plane" if i == 0 else f"control-plane-{i + 1}"
        data = workdir / name if i else workdir
        config = (
            f"id: agola\n{TOKEN_LINE}"
            f"gateway:\n  dataDir: {data / 'gateway'}\n{web['gateway']}"
            f"  apiExposedURL: {url['gateway']}\n  runserviceURL: {url['runservice']}\n"
            f"  configstoreURL: {url['configstore']}\n  gitserverURL: {url['gitserver']}\n"
            f"  adminToken: {ADMIN}\n"
            f"  tokenSigning: {{method: hmac, key: split-test-signing-key, duration: 1h}}\n"
            f"scheduler:\n  runserviceURL: {url['runservice']}\n"
            f"notification:\n  runserviceURL: {url['runservice']}\n  configstoreURL: {url['configstore']}\n{etcd}"
            f"{web['notification']}"
            f"runservice:\n  dataDir: {data / 'runservice'}\n{web['runservice']}{storage['runservice']}"
            f"configstore:\n  dataDir: {data / 'configstore'}\n{web['configstore']}{storage['configstore']}"
            f"gitserver:\n  dataDir: {data / 'gitserver'}\n{web['gitserver']}"
        )
        return ServeProcess(workdir, name, config, "all-base", url["gateway"])

    def start(self) -> None:
        # All at once (Python start-up is the slow part); the executor retries its heartbeats
        # until the runservice answers, as it would when hosts boot in any order.
        for p in self.processes:
            p.spawn()
        for p in self.processes:
            p.wait_healthy()

    def close(self) -> None:
        for p in self.processes:
            p.close()
