"""Workspaces and caches through the pod's io dir (FIFOs, drivers/dockerio.py), and the archive API
fallback: same files, same owners, and a pod tampering with its io dir gets nothing from the host."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agola.services.executor.drivers import dockerio
from agola.services.executor.drivers.base import ContainerSpec, PodSpec
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.drivers.dockerpod import DockerPod
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import (
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    WorkspaceOperation,
)
from agola.util import tarstream
from tests.executor.helpers import EXECUTOR_ID, phases, runner, spec, step_log
from tests.executor.test_docker import output
from tests.support.services import BUSYBOX_BIN
from tests.support.waiting import wait_for

# A tree with a file bigger than the FIFO's buffer, nested dirs, a link to outside, an empty file.
MAKE_TREE = (
    "mkdir -p out/a/b && head -c 3000000 /dev/urandom > out/a/big && echo deep > out/a/b/deep "
    "&& : > out/empty && ln -s /etc/passwd out/pw && cd out && md5sum a/big a/b/deep > ../sums"
)
CHECK_TREE = (
    "cd {dest} && md5sum -c ../sums && readlink pw && test -f empty "
    "&& stat -c '%u %n' a a/big a/b/deep | sort && id -u"
)


def tree_task(task_id: str, dest: str, *, first: str = "", user: str = "nobody", **kw: Any) -> Any:
    """Make a tree, save it as a workspace and a cache, restore both, check them (last step)."""
    pre = [RunStep(command=first)] if first else []
    return spec(
        task_id,
        *pre,
        RunStep(command=MAKE_TREE),
        SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", dest_dir=".", paths=["**"])]),
        SaveCacheStep(key="tree", contents=[SaveContent(source_dir="out")]),
        RestoreWorkspaceStep(dest_dir=dest),
        RestoreCacheStep(keys=["tree"], dest_dir=f"{dest}-cache"),
        RunStep(command=CHECK_TREE.format(dest=dest) + f" && cd ../{dest}-cache && md5sum -c ../sums"),
        workspace_operations=[WorkspaceOperation(task_id=task_id, step=len(pre) + 1)],
        user=user,
        **kw,
    )


def expect_tree(log: str, dest: str) -> None:
    lines = log.replace("\r\n", "\n").splitlines()
    assert lines[:3] == ["a/big: OK", "a/b/deep: OK", "/etc/passwd"]
    assert lines[3:7] == ["65534 a", "65534 a/b/deep", "65534 a/big", "65534"]
    assert lines[7:] == ["a/big: OK", "a/b/deep: OK"], f"{dest}: {log}"


@pytest.fixture
async def api_only_driver(busybox_image: str) -> AsyncIterator[DockerDriver]:
    driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN, archive_api_only=True))
    await driver.setup()
    yield driver
    for pod in await driver.list_pods(EXECUTOR_ID):
        await driver.remove_pod(pod.pod_id)
    await driver.close()


async def test_workspaces_and_caches_go_through_the_io_dir_on_a_local_engine(
    docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_archive_api(*_: Any, **__: Any) -> Any:
        raise AssertionError("the Docker archive API was used")

    monkeypatch.setattr(DockerPod, "get_archive", no_archive_api)
    monkeypatch.setattr(DockerPod, "_put_archive", no_archive_api)
    r = runner(tree_task("t-io", "ws"), docker_driver, data_dir, store)
    status = await r.run()
    assert phases(status) == ["success"] * 6, step_log(data_dir, "t-io", 5)
    expect_tree(step_log(data_dir, "t-io", 5), "ws")
    assert r.pod is not None
    assert not (docker_driver.io_base / r.pod.id).exists()  # removed with the pod


async def test_the_archive_api_path_when_forced_or_when_the_pod_does_not_see_its_io_dir(
    api_only_driver: DockerDriver, docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore
) -> None:
    forced = tree_task("t-api", "ws", first="test ! -e /.agola/io")
    status = await runner(forced, api_only_driver, data_dir, store).run()
    assert phases(status) == ["success"] * 7, step_log(data_dir, "t-api", 6)
    expect_tree(step_log(data_dir, "t-api", 6), "ws")

    # As with an engine on another machine: the pod does not see the marker the executor made.
    # (root, to remove the marker: the files then belong to root.)
    unseen = tree_task("t-unseen", "ws", first=f"rm /.agola/io/{dockerio.MARKER}", user="", cache_prefix="unseen")
    status = await runner(unseen, docker_driver, data_dir, store).run()
    assert phases(status) == ["success"] * 7, step_log(data_dir, "t-unseen", 6)
    assert "0 a/big" in step_log(data_dir, "t-unseen", 6)


async def test_a_pod_replacing_its_fifo_with_a_link_to_a_host_file_is_refused(
    docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_text("host data\n")
    make_fifo = dockerio.IoDir.make_fifo

    def make_and_replace(io: dockerio.IoDir, prefix: str) -> dockerio.Fifo:
        fifo = make_fifo(io, prefix)
        if prefix not in ("in", "out"):  # the step runner's, made before the pod starts
            return fifo
        # What a process of the pod can do in /.agola/io (the same directory, bind-mounted).
        os.unlink(fifo.host)
        os.symlink(host_file, fifo.host)
        return fifo

    monkeypatch.setattr(dockerio.IoDir, "make_fifo", make_and_replace)
    save = spec("t-evil-save", RunStep(command="mkdir -p out; echo x > out/x"),
                SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", paths=["**"])]))
    status = await runner(save, docker_driver, data_dir, store).run()
    assert phases(status) == ["success", "failed"]
    log = step_log(data_dir, "t-evil-save", 1)
    assert "Error: the pod replaced the executor's FIFO /.agola/io/out-" in log and "with a symbolic link" in log

    monkeypatch.setattr(dockerio.IoDir, "make_fifo", make_fifo)
    assert phases(await runner(spec("t-good-save", *save.data.steps), docker_driver, data_dir, store).run()) == [
        "success", "success"]
    monkeypatch.setattr(dockerio.IoDir, "make_fifo", make_and_replace)
    restore = spec("t-evil-restore", RestoreWorkspaceStep(dest_dir="."),
                   workspace_operations=[WorkspaceOperation(task_id="t-good-save", step=1)])
    status = await runner(restore, docker_driver, data_dir, store).run()
    assert phases(status) == ["failed"]
    log = step_log(data_dir, "t-evil-restore", 0)
    assert "Error: the pod replaced the executor's FIFO /.agola/io/in-" in log and "with a symbolic link" in log
    assert host_file.read_text() == "host data\n"


async def test_a_cancelled_transfer_ends_both_sides_and_the_pod_stays_usable(
    docker_driver: DockerDriver, busybox_image: str
) -> None:
    """A task stopped while an archive flows: the executor's thread and the pod's tar both end."""
    pod = await docker_driver.create_pod(
        PodSpec(task_id="t-io-cancel", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=busybox_image),)))
    try:
        assert isinstance(pod, DockerPod) and pod._io is not None
        assert await pod.exec(["sh", "-c", "mkdir -p /d && head -c 20000000 /dev/zero > /d/big"]) == 0
        started = threading.Event()

        def slow_consume(reader: tarstream.Readable) -> int:
            while reader.read(4096):
                started.set()
                time.sleep(0.01)
            return 0

        def slow_produce(out: tarstream.Writable, _owner: tuple[int, int]) -> None:
            while True:
                out.write(b"\0" * 4096)
                started.set()
                time.sleep(0.01)

        for transfer in (pod.read_archive("/d", slow_consume),
                         pod.write_archive("/e", slow_produce, tmp_dir=Path("/nonexistent"))):
            started.clear()
            task = asyncio.ensure_future(transfer)
            await wait_for(started.is_set, timeout=30, interval=0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=30)

            async def no_tar_left() -> bool:
                rc, out = await output(pod, ["ps", "-o", "comm"])
                return rc == 0 and "tar" not in out

            await wait_for(no_tar_left, timeout=30, interval=0.05)
            assert [p.name for p in pod._io.host.iterdir()] == [dockerio.MARKER]  # FIFOs removed
        def size(reader: tarstream.Readable) -> int:
            return sum(len(chunk) for chunk in iter(lambda: reader.read(1 << 20), b""))

        assert await pod.read_archive("/d", size) > 20_000_000  # the pod is still usable
    finally:
        await pod.remove()


async def test_io_dirs_without_a_pod_are_swept_with_the_orphans(docker_driver: DockerDriver) -> None:
    """A pod whose creation failed (an image that cannot be pulled) had its io dir already."""
    stale = dockerio.IoDir.create(docker_driver.io_base, f"{EXECUTOR_ID}-failed-pod")
    fresh = dockerio.IoDir.create(docker_driver.io_base, f"{EXECUTOR_ID}-being-created")
    old = time.time() - 2 * dockerio.SWEEP_MIN_AGE
    os.utime(stale.host, (old, old))
    try:
        await docker_driver.remove_orphans(EXECUTOR_ID, set())
        assert not stale.host.exists()
        assert fresh.host.exists()  # may be a pod being created right now
    finally:
        dockerio.IoDir.remove(docker_driver.io_base, fresh.host.name)
