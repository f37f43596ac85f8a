"""Fixtures for executor tests: drivers on the real Docker engine and on the host, a bare git repo
to clone from, a distroless-like image, a local archive store."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agola.services.executor.drivers.base import Driver
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.drivers.host import HostDriver, HostDriverConfig
from agola.services.executor.store import LocalArchiveStore
from tests.executor.helpers import EXECUTOR_ID
from tests.support.services import BUSYBOX_BIN, docker_available, missing

DISTROLESS_IMAGE = "agola-test/distroless:latest"


@pytest.fixture(scope="session")
def distroless_image(busybox_image: str) -> str:
    """An image holding only a static binary (busybox without applet links): no shell, no tools."""
    probe = subprocess.run(["docker", "image", "inspect", DISTROLESS_IMAGE], capture_output=True)
    if probe.returncode == 0:
        return DISTROLESS_IMAGE
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(BUSYBOX_BIN, arcname="busybox")
    subprocess.run(
        ["docker", "import", "--change", 'ENTRYPOINT ["/busybox"]', "-", DISTROLESS_IMAGE],
        input=buf.getvalue(), capture_output=True, check=True, timeout=120,
    )
    return DISTROLESS_IMAGE


@pytest.fixture(scope="session")
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A bare repository with two commits on ``main`` (file:// URL, refs and shas)."""
    root = tmp_path_factory.mktemp("git")
    bare, work = root / "repo.git", root / "work"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root)}

    def git(*args: str, cwd: Path = root) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    (work / "README").write_text("first\n")
    (work / "go.sum").write_text("deps v1\n")
    (work / "src").mkdir()
    (work / "src" / "main.sh").write_text("echo built\n")
    os.chmod(work / "src" / "main.sh", 0o755)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "README").write_text("second\n")
    git("commit", "-q", "-am", "second", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    return {"url": f"file://{bare}", "ref": "refs/heads/main", "first": first, "second": second}


@pytest.fixture
async def docker_driver(busybox_image: str) -> AsyncIterator[DockerDriver]:
    driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
    await driver.setup()
    yield driver
    for pod in await driver.list_pods(EXECUTOR_ID):
        await driver.remove_pod(pod.pod_id)
    await driver.close()


@pytest.fixture
def host_driver(tmp_path: Path) -> HostDriver:
    return HostDriver(HostDriverConfig(base_dir=tmp_path / "hostpods"))


@pytest.fixture(params=["docker", "host"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Driver]:
    """Both drivers, for step semantics that must be identical (host driver parity)."""
    if request.param == "host":
        yield HostDriver(HostDriverConfig(base_dir=tmp_path / "hostpods"))
        return
    if not docker_available():
        missing("a Docker engine")
    request.getfixturevalue("busybox_image")
    d = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
    await d.setup()
    yield d
    for pod in await d.list_pods(EXECUTOR_ID):
        await d.remove_pod(pod.pod_id)
    await d.close()


@pytest.fixture
def store(tmp_path: Path) -> LocalArchiveStore:
    return LocalArchiveStore(tmp_path / "store")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "executor-data"
    path.mkdir()
    yield path
